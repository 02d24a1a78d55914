package feishu_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

func TestOneTokenCallServesManyListings(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 30)
	c := e.client(t)
	for range 10 {
		mustList(t, c)
	}
	e.wantRequests(t, 1, "tenant_token")
	e.wantRequests(t, 20, "list_runs")
}

func TestTenantTokenIsRenewedBeforeItExpires(t *testing.T) {
	// The fake's tokens live 2h; the client renews once less than 12 min
	// (10% of the lifetime) remain, and never uses an expired one.
	for _, tc := range []struct {
		name       string
		after      time.Duration
		wantTokens int
	}{
		{"fresh token is reused", time.Hour, 1},
		{"token just outside the margin is reused", 2*time.Hour - 12*time.Minute - time.Second, 1},
		{"token inside the margin is renewed", 2*time.Hour - 11*time.Minute, 2},
		{"expired token is renewed", 3 * time.Hour, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.addRuns(testSession, 3)
			c := e.client(t)
			mustList(t, c)
			e.clock.Advance(tc.after)
			if _, err := c.ListRuns(context.Background(), testSession); err != nil {
				t.Fatalf("ListRuns after %v: %v", tc.after, err)
			}
			e.wantRequests(t, tc.wantTokens, "tenant_token")
			e.wantRequests(t, 2, "list_runs") // no request with a stale token
			bearers := e.Bearers()
			if tc.wantTokens == 2 && bearers[0] == bearers[1] {
				t.Errorf("the renewed token is the old one")
			}
		})
	}
}

func TestTokenInsideTheMarginIsUsedWhenRenewalFails(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	c := e.client(t)
	mustList(t, c)
	e.clock.Advance(2*time.Hour - 5*time.Minute)
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointTenantToken}, feishufake.Fault{Kind: feishufake.ServerError})
	if _, err := c.ListRuns(context.Background(), testSession); err != nil {
		t.Fatalf("ListRuns with the token endpoint down: %v", err)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	if len(e.obs.renewals) != 2 || e.obs.renewals[0] != nil || e.obs.renewals[1] == nil {
		t.Errorf("renewals observed = %v, want a success then a failure", e.obs.renewals)
	}
}

func TestRejectedTokenIsRenewedOnceThenTheListingSucceeds(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	c := e.client(t)
	mustList(t, c)
	e.fake.ExpireTokens() // 99991663 for the cached token
	runs, err := c.ListRuns(context.Background(), testSession)
	if err != nil {
		t.Fatalf("ListRuns after the token was revoked: %v", err)
	}
	if len(runs) != 3 {
		t.Errorf("runs = %d, want 3", len(runs))
	}
	e.wantRequests(t, 2, "tenant_token")
	want := []string{"tenant_token 0", "list_runs 0", "list_runs 99991663", "tenant_token 0", "list_runs 0"}
	if got := e.obs.Requests(); !slices.Equal(got, want) {
		t.Errorf("requests observed = %q, want %q", got, want)
	}
}

func TestTokenRejectedTwiceIsAnAuthError(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	e.fake.SetFault(feishufake.Scope{SessionID: testSession}, feishufake.Fault{Kind: feishufake.InvalidToken})
	_, err := e.client(t).ListRuns(context.Background(), testSession)
	if !feishu.IsAuth(err) || !hasCode(err, feishu.CodeTokenInvalid) {
		t.Fatalf("err = %v, want an auth error with code 99991663", err)
	}
	e.wantRequests(t, 2, "tenant_token") // one renewal, no loop
	e.wantRequests(t, 2, "list_runs")
}

func TestConcurrentListingsShareOneRenewal(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	sessions := []string{"session_a", "session_b", "session_c", "session_d", "session_e", "session_f", "session_g", "session_h"}
	for _, s := range sessions {
		e.addRuns(s, 25)
	}
	c := e.client(t)
	listAll := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(sessions)*3)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = c.ListRuns(context.Background(), sessions[i%len(sessions)])
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
	}

	listAll()
	e.wantRequests(t, 1, "tenant_token") // for the first concurrent listings
	e.fake.ExpireTokens()
	listAll()
	e.wantRequests(t, 2, "tenant_token") // after the token was revoked
	e.clock.Advance(3 * time.Hour)
	listAll()
	e.wantRequests(t, 3, "tenant_token") // after the token expired
}

func TestTokenEndpointFailureIsAnErrorNamingTheCode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret feishu.Secret
		fault  *feishufake.Fault
	}{
		{"wrong secret", "not-the-secret", nil},
		{"fault", testAppSecret, &feishufake.Fault{Kind: feishufake.TokenEndpointFailure}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.addRuns(testSession, 3)
			if tc.fault != nil {
				e.fake.SetFault(feishufake.Scope{AppID: testAppID}, *tc.fault)
			}
			_, err := e.client(t, func(c *feishu.Config) { c.AppSecret = tc.secret }).ListRuns(context.Background(), testSession)
			var apiErr *feishu.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if apiErr.Endpoint != feishu.EndpointTenantToken || apiErr.Code != feishu.CodeTokenInvalidParam || apiErr.HTTPStatus != http.StatusOK {
				t.Errorf("APIError = %+v, want tenant_token, HTTP 200, code 10003", apiErr)
			}
			if !strings.Contains(err.Error(), "code 10003") || !strings.Contains(err.Error(), "invalid param") {
				t.Errorf("error %q does not name the code and msg", err)
			}
			if !feishu.IsAuth(err) {
				t.Errorf("IsAuth(%v) = false", err)
			}
			e.wantRequests(t, 0, "list_runs")
			e.obs.mu.Lock()
			defer e.obs.mu.Unlock()
			if len(e.obs.renewals) != 1 || e.obs.renewals[0] == nil {
				t.Errorf("renewals observed = %v, want one failure", e.obs.renewals)
			}
		})
	}
}

func TestTokenResponseWithoutATokenIsAnError(t *testing.T) {
	for _, body := range []string{
		`{"code":0,"msg":"ok","expire":7200}`,
		`{"code":0,"msg":"ok","tenant_access_token":"t-abcdef0123456789","expire":"soon"}`,
	} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
		c := newClientOf(t, h)
		_, err := c.ListRuns(context.Background(), testSession)
		if err == nil || !strings.Contains(err.Error(), "malformed token response") || strings.Contains(err.Error(), "t-abcdef") {
			t.Errorf("body %s: err = %v, want a missing token error without the token", body, err)
		}
	}
}

func TestUserAccessTokenFileIsReadAgainWhenItChanges(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	path := filepath.Join(t.TempDir(), "token")
	write := func(tok string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte("  "+tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client(t, func(c *feishu.Config) {
		c.AppID, c.AppSecret, c.UserAccessTokenFile = "", "", path
	})
	list := func() error {
		_, err := c.ListRuns(context.Background(), testSession)
		return err
	}

	if err := list(); err == nil {
		t.Fatal("listing without the token file succeeded")
	}

	e.fake.AddUserToken("u-first")
	write("u-first", epoch)
	if err := list(); err != nil {
		t.Fatalf("ListRuns with u-first: %v", err)
	}
	if err := list(); err != nil {
		t.Fatalf("ListRuns with u-first again: %v", err)
	}

	// Same size, new mtime: read again.
	e.fake.RemoveUserToken("u-first")
	e.fake.AddUserToken("u-secnd")
	write("u-secnd", epoch.Add(time.Minute))
	if err := list(); err != nil {
		t.Fatalf("ListRuns with u-secnd: %v", err)
	}

	// Same mtime, other size: read again.
	e.fake.AddUserToken("u-third-longer")
	write("u-third-longer", epoch.Add(time.Minute))
	if err := list(); err != nil {
		t.Fatalf("ListRuns with u-third-longer: %v", err)
	}

	want := []string{"u-first", "u-first", "u-secnd", "u-third-longer"}
	if got := e.Bearers(); !slices.Equal(got, want) {
		t.Errorf("tokens sent = %q, want %q", got, want)
	}
	e.wantRequests(t, 0, "tenant_token")
}

func TestRejectedUserTokenIsReadAgainOnce(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("u-revoked\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, func(c *feishu.Config) {
		c.AppID, c.AppSecret, c.UserAccessTokenFile = "", "", path
	})
	_, err := c.ListRuns(context.Background(), testSession)
	if !feishu.IsAuth(err) || !hasCode(err, feishu.CodeTokenUserInvalid) {
		t.Fatalf("err = %v, want an auth error with code 99991668", err)
	}
	e.wantRequests(t, 2, "list_runs") // one retry after re-reading the file
	var ce *feishu.CredentialError
	if !errors.As(err, &ce) || !ce.Refused {
		t.Errorf("err = %#v, want a *CredentialError of a refused token", err)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	// Two reads of the file, then the refusal of the token read again.
	if len(e.obs.renewals) != 3 || e.obs.renewals[0] != nil || e.obs.renewals[1] != nil || !feishu.IsCredential(e.obs.renewals[2]) {
		t.Errorf("token renewals observed = %v, want two reads and a refusal", e.obs.renewals)
	}
}

func TestBadUserAccessTokenFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":     " \n\t",
		"two lines": "u-one\nu-two\n",
		"huge":      strings.Repeat("u", 100<<10),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			e := newTestEnv(t, feishufake.Options{})
			c := e.client(t, func(c *feishu.Config) {
				c.AppID, c.AppSecret, c.UserAccessTokenFile = "", "", path
			})
			_, err := c.ListRuns(context.Background(), testSession)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want an error naming the file", err)
			}
			e.wantRequests(t, 0, "list_runs")
		})
	}
}

func TestWaitingForATokenHonoursTheContext(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointTenantToken}, feishufake.Fault{Kind: feishufake.Slow, Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// The shared renewal goes on in the background after the caller gave
	// up, bounded by the HTTP client's timeout; a short one, and clearing
	// the fault, let the test server close promptly.
	c := e.client(t, func(c *feishu.Config) { c.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond} })
	_, err := c.ListRuns(ctx, testSession)
	e.fake.ClearFaults()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestShortLivedTokenIsReusedUntilHalfItsLifetime(t *testing.T) {
	// A token living 5 min is shorter than the 5 min minimum margin: it is
	// renewed once half its lifetime has passed, not on every call.
	e := newTestEnv(t, feishufake.Options{TokenTTL: 5 * time.Minute})
	e.addRuns(testSession, 3)
	c := e.client(t)
	list := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.ListRuns(ctx, testSession); err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
	}
	list()
	list()
	e.clock.Advance(2 * time.Minute)
	list()
	e.wantRequests(t, 1, "tenant_token") // within half the lifetime
	e.clock.Advance(time.Minute)
	list()
	e.wantRequests(t, 2, "tenant_token") // past half the lifetime
}
