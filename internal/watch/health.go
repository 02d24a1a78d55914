package watch

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// appHealth is what was last logged of an app as a whole, so that what all
// its sessions share — a credential that fails, an API host that does not
// answer, polls cut off by the scrape deadline — is logged once for the app
// when it starts, changes or ends, not once per session or per scrape.
type appHealth struct {
	mu sync.Mutex
	// failure is the app-wide failure last logged, nil when none is.
	failure error
	// cutOff: the last scrape that polled the app had polls cut off.
	cutOff bool
}

// The messages of the app's log lines; the failed calls table of
// docs/troubleshooting.md quotes them.
const (
	msgCredentialFails = "The app's credential fails: every session of the app fails until it works"
	msgHostSilent      = "The app's API host does not answer: every session of the app fails until it does"
	msgRequestsRefused = "The API refuses the app's requests: every session of the app fails until that is fixed"
	msgAppWorks        = "The app's requests work again"
	msgCutOff          = "Polls of the app were cut off by the scrape deadline"
	msgCutOffEnds      = "Polls of the app finish within the scrape deadline again"
)

// appWide reports whether err fails every session of the app alike: its
// credential (no token, or a token refused), the API refusing the app (a
// missing scope or permission), or the API's host not answering.
func appWide(err error) bool {
	var te *feishu.TransportError
	return err != nil && (feishu.IsCredential(err) || feishu.IsAuth(err) || errors.As(err, &te))
}

// failed notes a poll of the app that failed with an app-wide error: a
// warning when the app's failure starts or changes.
func (h *appHealth) failed(l log.Logger, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failure != nil && errorKey(h.failure) == errorKey(err) {
		return
	}
	h.failure = err
	msg := msgRequestsRefused
	var te *feishu.TransportError
	switch {
	case errors.As(err, &te):
		msg = msgHostSilent
	case feishu.IsCredential(err):
		msg = msgCredentialFails
	}
	level.Warn(l).Log("msg", msg, "err", err, "hint", hint(err))
}

// works notes a poll of the app that did not fail with an app-wide error:
// the API answered the app's requests. The end of a failure is logged.
func (h *appHealth) works(l log.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failure == nil {
		return
	}
	level.Info(l).Log("msg", msgAppWorks, "was", h.failure)
	h.failure = nil
}

// cut notes a poll of the app cut off by the scrape deadline, with err: a
// warning unless the app's polls were cut off already.
func (h *appHealth) cut(l log.Logger, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cutOff {
		return
	}
	h.cutOff = true
	level.Warn(l).Log("msg", msgCutOff, "err", err, "hint", cutOffHint(err))
}

// notCut notes a scrape whose polls of the app were none of them cut off.
func (h *appHealth) notCut(l log.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.cutOff {
		return
	}
	h.cutOff = false
	level.Info(l).Log("msg", msgCutOffEnds)
}

// credentialFails reports whether the app's failure is its credential's.
func (h *appHealth) credentialFails() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return feishu.IsCredential(h.failure)
}

// hint says what to check or change about an app-wide failure, in the
// words of the troubleshooting table (docs/troubleshooting.md).
func hint(err error) string {
	var te *feishu.TransportError
	if errors.As(err, &te) {
		if te.Timeout > 0 {
			return fmt.Sprintf("%s gave no answer within --feishu.timeout (%s): check base_url and the network (proxy, firewall), or raise --feishu.timeout if the API is only slow", te.Host, te.Timeout)
		}
		return fmt.Sprintf("%s cannot be reached: check base_url and the network (DNS, proxy, firewall)", te.Host)
	}
	var ae *feishu.APIError
	var ce *feishu.CredentialError
	code, status := 0, 0
	if errors.As(err, &ae) {
		code, status = ae.Code, ae.HTTPStatus
	}
	credential := errors.As(err, &ce)
	switch {
	case code == feishu.CodeTokenInvalidParam:
		return "check app_id and app_secret (the secret file, or that the ${VAR} holds the current secret), then reload"
	case code == feishu.CodeTokenUserInvalid || code == feishu.CodeUserTokenExpired || (credential && ae == nil):
		return "put a valid user access token in user_access_token_file; it is read again when it changes"
	case code == feishu.CodeScopeMissing:
		return "grant the app the aily:run:read scope, publish a new version and have an admin approve it"
	case status == http.StatusNotFound:
		return "base_url is wrong: it must be the bare host, https://open.feishu.cn or https://open.larksuite.com"
	case credential && ce.Refused:
		return "the app's token is refused: check the app in the Feishu developer console (disabled, re-created)"
	case credential:
		return "the token endpoint failed; the exporter tries again after a back-off (1s doubling up to 5 min)"
	}
	return "check the app's permissions in the Feishu developer console"
}

// cutOffHint says what to change when polls are cut off by the scrape
// deadline, naming the host that did not answer in time if err does.
func cutOffHint(err error) string {
	api := "the API"
	var te *feishu.TransportError
	if errors.As(err, &te) {
		api = te.Host
	}
	return fmt.Sprintf("%s did not answer before the scrape deadline: raise scrape_timeout in Prometheus or lower --scrape.timeout-offset; keep --feishu.timeout below the scrape timeout, so that a request that hangs fails and is retried within it", api)
}

// errorKey is what tells two failures apart: an API error's endpoint, status
// and code (its message and log ID change on every call); a request that got
// no answer's endpoint, host and cause (not the addresses and ports in its
// text); a credential's failure without the session it was met in; or the
// text.
func errorKey(err error) string {
	var e *feishu.APIError
	if errors.As(err, &e) {
		return fmt.Sprintf("%s/%d/%d", e.Endpoint, e.HTTPStatus, e.Code)
	}
	var te *feishu.TransportError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s at %s: %s", te.Endpoint, te.Host, transportCause(te))
	}
	var ce *feishu.CredentialError
	if errors.As(err, &ce) {
		return ce.Err.Error()
	}
	return err.Error()
}

// transportCause is why a request got no answer, without the addresses in
// the error's text: the timeout, else the failed operation and the innermost
// error (connection refused, no such host, …).
func transportCause(te *feishu.TransportError) string {
	if te.Timeout > 0 {
		return fmt.Sprintf("no answer within %s", te.Timeout)
	}
	cause := te.Err
	for inner := errors.Unwrap(cause); inner != nil; inner = errors.Unwrap(cause) {
		cause = inner
	}
	var op *net.OpError
	if errors.As(te.Err, &op) {
		return op.Op + ": " + cause.Error()
	}
	return cause.Error()
}
