package feishu

import (
	"errors"
	"fmt"
	"net/http"
)

// Platform codes the client and its callers branch on.
const (
	CodeOK                = 0
	CodeParamInvalid      = 2700001  // aily: a request parameter is wrong (e.g. page_size too large)
	CodeRateLimited       = 99991400 // request trigger frequency limit
	CodeTokenMissing      = 99991661 // no or malformed Authorization header
	CodeTokenInvalid      = 99991663 // tenant token invalid or expired
	CodeTokenUserInvalid  = 99991668 // user token invalid or expired
	CodeTokenMalformed    = 99991671 // token must start with t-/u-
	CodeScopeMissing      = 99991672 // the app lacks the API scope
	CodeTokenNoPermission = 99991676
	CodeUserTokenExpired  = 99991677
	CodeUserNotAuthorized = 99991679
	CodeIPDenied          = 99991401
	CodeMonthlyQuota      = 99991403
	CodeTokenInvalidParam = 10003 // token endpoint: invalid app_id/app_secret
	CodeResourceNotFound  = 99991201
)

// APIError is a failed call to the Feishu API: a non-2xx HTTP status, a
// non-zero code in the body, or a body that is not the expected JSON.
// It never holds a secret.
type APIError struct {
	Endpoint   Endpoint
	HTTPStatus int    // the HTTP status of the response
	Code       int    // the body's code; 0 when the body carried none
	Msg        string // the body's msg, or a short excerpt of a non-JSON body
	LogID      string // X-Tt-Logid (or X-Request-Id), to quote to Feishu support
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("feishu %s: HTTP %d", e.Endpoint, e.HTTPStatus)
	if e.Code != 0 {
		s += fmt.Sprintf(", code %d", e.Code)
	}
	if e.Msg != "" {
		s += fmt.Sprintf(": %q", e.Msg)
	}
	if e.LogID != "" {
		s += " (log id " + e.LogID + ")"
	}
	return s
}

// IsRateLimited reports whether err is the API saying "slow down".
func IsRateLimited(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.HTTPStatus == http.StatusTooManyRequests || e.Code == CodeRateLimited)
}

// IsAuth reports whether err is a credential or permission problem, which
// retrying will not fix.
func IsAuth(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case CodeTokenMissing, CodeTokenInvalid, CodeTokenUserInvalid, CodeTokenMalformed,
		CodeScopeMissing, CodeTokenNoPermission, CodeUserTokenExpired, CodeUserNotAuthorized,
		CodeIPDenied, CodeTokenInvalidParam:
		return true
	}
	return e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden
}

// IsNotFound reports whether err says the session or path does not exist.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.HTTPStatus == http.StatusNotFound || e.Code == CodeResourceNotFound)
}

// isTokenRejected reports whether the API rejected the token itself, in which
// case the cached token is dropped and the call retried once with a new one.
func isTokenRejected(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case CodeTokenMissing, CodeTokenInvalid, CodeTokenMalformed:
		return true
	}
	return false
}
