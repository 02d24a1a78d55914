package feishu_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// renewalSignal is an observer that also tells, on a channel, that a token
// renewal ended, so that a test can wait for a renewal it did not wait for.
type renewalSignal struct {
	*observer
	done chan error
}

func (o renewalSignal) ObserveTokenRenewal(err error) {
	o.observer.ObserveTokenRenewal(err)
	o.done <- err
}

// signalledClient is a client of the fake's app with the secret given, whose
// renewals end on the channel returned.
func signalledClient(t *testing.T, e *testEnv, secret feishu.Secret) (*feishu.Client, chan error) {
	t.Helper()
	done := make(chan error, 10)
	return e.client(t, func(c *feishu.Config) {
		c.AppSecret = secret
		c.Observer = renewalSignal{e.obs, done}
	}), done
}

func TestAFailedTokenRenewalBacksOff(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	c, renewed := signalledClient(t, e, "not-the-secret")
	list := func() error {
		_, err := c.ListRuns(context.Background(), testSession)
		return err
	}
	tokenRequests := func() int { return e.fake.Requests(string(feishu.EndpointTenantToken)) }

	first := list()
	last := <-renewed
	var ce *feishu.CredentialError
	if !errors.As(first, &ce) || ce.Refused || !hasCode(first, feishu.CodeTokenInvalidParam) || error(ce) != last {
		t.Fatalf("err = %v, want the renewal's *CredentialError with code 10003", first)
	}
	// The back-off doubles from 1s up to 5 min: within it, requests fail
	// at once with the same error; at its end one renewal is made, which
	// the caller who starts it waits for, and fails with.
	for i, wait := range []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300} {
		wait *= time.Second
		for _, d := range []time.Duration{0, wait - time.Millisecond} {
			e.clock.Advance(d)
			if err := list(); !errors.Is(err, last) {
				t.Fatalf("renewal %d, %v into its back-off of %v: err = %v, want the renewal's error %v", i+1, d, wait, err, last)
			}
			e.clock.Advance(-d)
		}
		if n := tokenRequests(); n != i+1 {
			t.Fatalf("token requests within back-off %d = %d, want %d", i+1, n, i+1)
		}
		e.clock.Advance(wait)
		err := list()
		if last = <-renewed; !feishu.IsCredential(last) || !hasCode(last, feishu.CodeTokenInvalidParam) {
			t.Fatalf("renewal %d: %v", i+2, last)
		}
		if !errors.Is(err, last) {
			t.Fatalf("the call that starts renewal %d: err = %v, want that renewal's error %v", i+2, err, last)
		}
	}
	if e.fake.Requests(string(feishu.EndpointListRuns)) != 0 {
		t.Error("a list request was made without a token")
	}

	// Once a renewal works, listings work, and a later failure backs off
	// from 1s again.
	e.fake.AddApp(testAppID, "not-the-secret")
	e.clock.Advance(300 * time.Second)
	if err := list(); err != nil {
		t.Fatalf("the call that starts the renewal that works: %v", err)
	}
	if err := <-renewed; err != nil {
		t.Fatalf("renewal with the right secret: %v", err)
	}
	if err := list(); err != nil {
		t.Fatalf("ListRuns once the renewal worked: %v", err)
	}
	e.fake.ExpireTokens()
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointTenantToken}, feishufake.Fault{Kind: feishufake.TokenEndpointFailure})
	if err := list(); !feishu.IsCredential(err) {
		t.Fatalf("err = %v, want a *CredentialError", err)
	}
	<-renewed
	e.fake.ClearFaults()
	e.clock.Advance(time.Second)
	if err := list(); err != nil {
		t.Errorf("the call that starts the renewal 1s after the failure (the back-off reset): %v", err)
	}
	if err := <-renewed; err != nil {
		t.Errorf("renewal 1s after the failure, the back-off reset: %v", err)
	}
}

func TestATokenRefusedAfterItsRenewalBacksOff(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	e.fake.SetFault(feishufake.Scope{SessionID: testSession}, feishufake.Fault{Kind: feishufake.InvalidToken})
	c := e.client(t)
	_, err := c.ListRuns(context.Background(), testSession)
	var ce *feishu.CredentialError
	if !errors.As(err, &ce) || !ce.Refused || !hasCode(err, feishu.CodeTokenInvalid) || !feishu.IsAuth(err) {
		t.Fatalf("err = %v, want a *CredentialError of a refused token, code 99991663", err)
	}
	if !strings.HasPrefix(err.Error(), "list runs of session "+testSession+": page 1: tenant token of app "+testAppID+" refused: ") {
		t.Errorf("error %q does not say the app's token was refused", err)
	}
	// Within the back-off, no request at all.
	for range 3 {
		if _, again := c.ListRuns(context.Background(), testSession); !errors.Is(again, ce) {
			t.Fatalf("err = %v, want the refusal %v", again, ce)
		}
	}
	if tok, list := e.fake.Requests("tenant_token"), e.fake.Requests("list_runs"); tok != 2 || list != 2 {
		t.Errorf("token and list requests = %d and %d, want 2 and 2", tok, list)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	if n := len(e.obs.renewals); n != 3 || e.obs.renewals[2] != error(ce) {
		t.Errorf("renewals observed = %v, want two renewals and the refusal", e.obs.renewals)
	}
}

func TestAMissingUserTokenFileIsACredentialError(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	path := filepath.Join(t.TempDir(), "token")
	c := e.client(t, func(c *feishu.Config) {
		c.AppID, c.AppSecret, c.UserAccessTokenFile = "", "", path
	})
	_, err := c.ListRuns(context.Background(), testSession)
	if !feishu.IsCredential(err) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want a *CredentialError naming the missing file", err)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	if len(e.obs.renewals) != 1 || !feishu.IsCredential(e.obs.renewals[0]) {
		t.Errorf("renewals observed = %v, want the failed read", e.obs.renewals)
	}
}

// hangingAPI is the fake behind a server whose list endpoint, or every
// endpoint, accepts requests and never answers (until the client gives up).
func hangingAPI(t *testing.T, e *testEnv, endpoint feishu.Endpoint) (host string) {
	t.Helper()
	e.fake.SetFault(feishufake.Scope{Endpoint: endpoint}, feishufake.Fault{Kind: feishufake.Slow, Delay: time.Hour})
	t.Cleanup(e.fake.ClearFaults) // before the server closes
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestRequestsThatGetNoAnswerNameTheHost(t *testing.T) {
	const pageToken = "page-token-that-stays-out-of-errors"
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	host := hangingAPI(t, e, feishu.EndpointListRuns)
	c := e.client(t, func(c *feishu.Config) { c.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond} })

	_, err := c.ListRunsPage(context.Background(), testSession, pageToken)
	var te *feishu.TransportError
	if !errors.As(err, &te) || te.Host != host || te.Endpoint != feishu.EndpointListRuns || te.Timeout != 50*time.Millisecond {
		t.Fatalf("err = %#v, want a *TransportError of list_runs at %s after the 50ms timeout", err, host)
	}
	want := "list runs of session " + testSession + ": feishu list_runs at " + host + ": no answer within the request timeout of 50ms: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start %q", err, want)
	}
	for _, bad := range []string{pageToken, "page_size", "?", "/open-apis/"} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error %q shows the URL (%q)", err, bad)
		}
	}
	e.wantRequests(t, feishu.DefaultMaxAttempts, "list_runs")

	// The caller's deadline: no request timeout, but still the host.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c = e.client(t)
	_, err = c.ListRunsPage(ctx, testSession, pageToken)
	if !errors.As(err, &te) || te.Host != host || te.Timeout != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %#v, want a *TransportError at %s wrapping the deadline", err, host)
	}
	if want := "feishu list_runs at " + host + ": context deadline exceeded"; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %q does not end %q", err, want)
	}

	// A context that ended before the call: no request, and still the
	// host, whichever the call.
	before := e.fake.Requests("list_runs") + e.fake.Requests("get_run")
	ended, end := context.WithCancel(context.Background())
	end()
	for name, call := range map[string]func() error{
		"ListRunsPage": func() error { _, err := c.ListRunsPage(ended, testSession, ""); return err },
		"GetRun":       func() error { _, err := c.GetRun(ended, testSession, "run_x"); return err },
	} {
		err := call()
		if !errors.As(err, &te) || te.Host != host || !errors.Is(err, context.Canceled) {
			t.Errorf("%s with an ended context: err = %v, want a *TransportError at %s wrapping context.Canceled", name, err, host)
		}
	}
	if after := e.fake.Requests("list_runs") + e.fake.Requests("get_run"); after != before {
		t.Errorf("%d requests with an ended context", after-before)
	}
}

func TestATokenEndpointThatNeverAnswersFailsTheAppAtOnceAfterwards(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	host := hangingAPI(t, e, feishu.EndpointTenantToken)
	done := make(chan error, 10)
	c := e.client(t, func(c *feishu.Config) {
		c.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond}
		c.Observer = renewalSignal{e.obs, done}
	})

	// The first caller waits for the renewal until its own deadline, and
	// is told where it was waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := c.ListRuns(ctx, testSession)
	var te *feishu.TransportError
	if !errors.As(err, &te) || te.Endpoint != feishu.EndpointTenantToken || te.Host != host || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a *TransportError of tenant_token at %s wrapping the deadline", err, host)
	}
	// The renewal gives up after its attempts; from then on the app's
	// requests fail at once with its error, which names the host and the
	// request timeout.
	renewal := <-done
	if !feishu.IsCredential(renewal) || !errors.As(renewal, &te) || te.Host != host || te.Timeout != 50*time.Millisecond {
		t.Fatalf("renewal = %v, want a *CredentialError from a *TransportError at %s", renewal, host)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if _, err := c.ListRuns(ctx, testSession); !errors.Is(err, renewal) {
		t.Errorf("err = %v, want the renewal's error at once", err)
	}
	e.wantRequests(t, feishu.DefaultMaxAttempts, "tenant_token") // the attempts of one renewal
}
