package feishufake

import (
	"fmt"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// FaultKind is a way the fake misbehaves.
type FaultKind int

// The faults a test can switch on. Each applies to the endpoints named; on
// other endpoints it is ignored and not used up.
const (
	// RateLimit429 answers HTTP 429 {"code":99991400,"msg":"request trigger
	// frequency limit"} with x-ogw-ratelimit-limit and x-ogw-ratelimit-reset
	// (Fault.ResetSeconds) headers. Every endpoint.
	RateLimit429 FaultKind = iota + 1
	// RateLimit400 is the same with HTTP 400, as some older APIs do.
	RateLimit400
	// InvalidToken answers HTTP 400 code 99991663 whatever the token. List
	// and get-run endpoints only.
	InvalidToken
	// TokenEndpointFailure answers HTTP 200 {"code":10003,"msg":"invalid
	// param"}. Token endpoint only.
	TokenEndpointFailure
	// ServerError answers Fault.HTTPStatus (default 500) with a JSON body,
	// or an empty one with Fault.EmptyBody. Every endpoint.
	ServerError
	// NotFoundText answers 404 text/plain "404 page not found", as the real
	// gateway does for unknown paths. Every endpoint.
	NotFoundText
	// MalformedJSON answers HTTP 200, Content-Type JSON, with the normal
	// body cut in half. Every endpoint.
	MalformedJSON
	// Slow waits Fault.Delay (or until the request's context is done) and
	// then serves the request normally, other faults included. Every
	// endpoint.
	Slow
	// RepeatPageToken makes every page carry the same page_token with
	// has_more true, so a client that does not notice loops forever. List
	// endpoint only.
	RepeatPageToken
	// EchoCredentials answers with the request's credentials quoted back,
	// as a careless gateway or proxy might: on the token endpoint the
	// request body (app_secret included), elsewhere the Authorization
	// header. Fault.Echo chooses the form. Every endpoint.
	EchoCredentials
)

// EchoForm is the form of an EchoCredentials answer.
type EchoForm int

// The forms of an EchoCredentials answer.
const (
	// EchoJSON is a JSON error whose msg quotes the credentials: on the
	// token endpoint HTTP 200 code 10003, elsewhere HTTP 400 with
	// Fault.Code (default 99991663).
	EchoJSON EchoForm = iota
	// EchoText is an HTTP 400 text/plain body quoting them.
	EchoText
	// EchoHTML is an HTTP 502 HTML error page quoting them.
	EchoHTML
)

// String returns the kind's Go name, as test names use it.
func (k FaultKind) String() string {
	switch k {
	case RateLimit429:
		return "RateLimit429"
	case RateLimit400:
		return "RateLimit400"
	case InvalidToken:
		return "InvalidToken"
	case TokenEndpointFailure:
		return "TokenEndpointFailure"
	case ServerError:
		return "ServerError"
	case NotFoundText:
		return "NotFoundText"
	case MalformedJSON:
		return "MalformedJSON"
	case Slow:
		return "Slow"
	case RepeatPageToken:
		return "RepeatPageToken"
	case EchoCredentials:
		return "EchoCredentials"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// appliesTo reports whether the kind means anything on an endpoint.
func (k FaultKind) appliesTo(endpoint feishu.Endpoint) bool {
	switch k {
	case InvalidToken:
		return endpoint == feishu.EndpointListRuns || endpoint == feishu.EndpointGetRun
	case RepeatPageToken:
		return endpoint == feishu.EndpointListRuns
	case TokenEndpointFailure:
		return endpoint == feishu.EndpointTenantToken
	}
	return true
}

// Scope says which requests a fault hits. Every field set must match; the
// zero Scope matches every request.
type Scope struct {
	// AppID is a credential app (cli_…): its token calls, and the listings
	// and run gets made with tenant tokens issued to it.
	AppID string
	// SessionID is a session's listings and run gets.
	SessionID string
	// Endpoint is feishu.EndpointTenantToken, feishu.EndpointListRuns or
	// feishu.EndpointGetRun.
	Endpoint feishu.Endpoint
}

func (sc Scope) matches(endpoint feishu.Endpoint, appID, sessionID string) bool {
	return (sc.AppID == "" || sc.AppID == appID) &&
		(sc.SessionID == "" || sc.SessionID == sessionID) &&
		(sc.Endpoint == "" || sc.Endpoint == endpoint)
}

// Fault is a misbehaviour and how often it happens.
type Fault struct {
	Kind FaultKind
	// Times is how many requests it hits; 0 means until cleared.
	Times int
	// Delay is Slow's wait.
	Delay time.Duration
	// ResetSeconds is the x-ogw-ratelimit-reset header of the rate-limit
	// faults: 0 means 1 (the real header is at least 1), negative leaves
	// the header out.
	ResetSeconds int
	// HTTPStatus is ServerError's status; 0 means 500.
	HTTPStatus int
	// EmptyBody makes ServerError's body empty instead of JSON.
	EmptyBody bool
	// Echo is EchoCredentials' form.
	Echo EchoForm
	// Code is the code of an EchoJSON answer off the token endpoint; 0
	// means 99991663.
	Code int
}

type activeFault struct {
	scope Scope
	Fault
	used int
}

// SetFault switches a fault on for a scope. It replaces a fault of the same
// kind set earlier for the same scope; faults of other kinds stay. When
// several faults hit a request, Slow waits first, then the earliest set of
// the others decides the answer.
func (f *Fake) SetFault(sc Scope, fl Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.faults {
		if a.scope == sc && a.Kind == fl.Kind {
			f.faults[i] = &activeFault{scope: sc, Fault: fl}
			return
		}
	}
	f.faults = append(f.faults, &activeFault{scope: sc, Fault: fl})
}

// ClearFault switches off the faults set for exactly this scope.
func (f *Fake) ClearFault(sc Scope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.faults[:0]
	for _, a := range f.faults {
		if a.scope != sc {
			kept = append(kept, a)
		}
	}
	clear(f.faults[len(kept):])
	f.faults = kept
}

// ClearFaults switches every fault off.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// hit is what the faults do to one request: the total Slow delay, whether
// the page token repeats, and the fault that decides the answer (nil: answer
// normally).
type hit struct {
	delay       time.Duration
	repeatToken bool
	answer      *Fault
}

// takeFaultsLocked picks the faults hitting a request and uses them up;
// faults used up are dropped.
func (f *Fake) takeFaultsLocked(endpoint feishu.Endpoint, appID, sessionID string) hit {
	var h hit
	kept := f.faults[:0]
	for _, a := range f.faults {
		if a.Kind.appliesTo(endpoint) && a.scope.matches(endpoint, appID, sessionID) {
			use := true
			switch a.Kind {
			case Slow:
				h.delay += a.Delay
			case RepeatPageToken:
				h.repeatToken = true
			default:
				if h.answer == nil {
					fl := a.Fault
					h.answer = &fl
				} else {
					use = false // not applied, so not used up
				}
			}
			if use {
				a.used++
			}
		}
		if a.Times == 0 || a.used < a.Times {
			kept = append(kept, a)
		}
	}
	clear(f.faults[len(kept):])
	f.faults = kept
	return h
}
