package feishu

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
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
	return hasAPIError(err, []int{CodeRateLimited}, http.StatusTooManyRequests)
}

// IsAuth reports whether err is a credential or permission problem, which
// retrying will not fix.
func IsAuth(err error) bool {
	return hasAPIError(err, []int{CodeTokenMissing, CodeTokenInvalid, CodeTokenUserInvalid, CodeTokenMalformed,
		CodeScopeMissing, CodeTokenNoPermission, CodeUserTokenExpired, CodeUserNotAuthorized,
		CodeIPDenied, CodeTokenInvalidParam}, http.StatusUnauthorized, http.StatusForbidden)
}

// IsNotFound reports whether err says the session or path does not exist.
func IsNotFound(err error) bool {
	return hasAPIError(err, []int{CodeResourceNotFound}, http.StatusNotFound)
}

// isTokenRejected reports whether the API rejected the token itself, in which
// case the cached token is dropped and the call retried once with a new one.
func isTokenRejected(err error) bool {
	return hasCode(err, CodeTokenMissing, CodeTokenInvalid, CodeTokenMalformed)
}

// hasCode reports whether err is an *APIError with one of codes.
func hasCode(err error, codes ...int) bool { return hasAPIError(err, codes) }

// hasAPIError reports whether err is an *APIError with one of codes or of
// the HTTP statuses: how every kind of answer is told apart.
func hasAPIError(err error, codes []int, statuses ...int) bool {
	var e *APIError
	return errors.As(err, &e) && (slices.Contains(codes, e.Code) || slices.Contains(statuses, e.HTTPStatus))
}

// TransportError is a request to the Feishu API that got no answer: the
// connection failed, no answer came within the request timeout, or the
// caller's context ended first. It names the endpoint and the host, never the
// URL's path or query (page tokens, IDs), and holds no secret.
type TransportError struct {
	Endpoint Endpoint
	Host     string // the API's host, with its port if the base URL has one
	// Timeout is the request timeout when it passed with no (whole) answer;
	// 0 when the request failed otherwise.
	Timeout time.Duration
	Err     error
}

func (e *TransportError) Error() string {
	if e.Timeout > 0 {
		return fmt.Sprintf("feishu %s at %s: no answer within the request timeout of %s: %v", e.Endpoint, e.Host, e.Timeout, e.Err)
	}
	return fmt.Sprintf("feishu %s at %s: %v", e.Endpoint, e.Host, e.Err)
}

// Unwrap returns the underlying error, so that errors.Is(err,
// context.DeadlineExceeded) still tells a deadline.
func (e *TransportError) Unwrap() error { return e.Err }

// CredentialError is a request that failed on its app's credential, which
// every request of the app shares: no token could be obtained (the token
// endpoint failed or did not answer, or the user access token file could not
// be read), or the API refused a token just renewed. Err says why: an
// *APIError or a *TransportError when the API answered or did not.
type CredentialError struct {
	// Credential names the credential without any secret: "tenant token of
	// app cli_…" or "user access token from file …".
	Credential string
	// Refused is true when the API refused the token, and so the request
	// was sent; false when the request was not sent for want of a token.
	Refused bool
	Err     error
}

func (e *CredentialError) Error() string {
	if e.Refused {
		return fmt.Sprintf("%s refused: %v", e.Credential, e.Err)
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *CredentialError) Unwrap() error { return e.Err }

// IsCredential reports whether err is a failure of the app's credential
// (a *CredentialError), which fails every request of the app alike.
func IsCredential(err error) bool {
	var e *CredentialError
	return errors.As(err, &e)
}
