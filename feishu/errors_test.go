package feishu_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

func TestBodiesThatAreNotTheExpectedJSON(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resp       cannedResponse
		wantStatus int
		wantMsg    string
		wantCode   string
	}{
		{"plain-text 404", cannedResponse{status: 404, header: map[string]string{"Content-Type": "text/plain"}, body: "404 page not found\n"}, 404, "404 page not found", "http_404"},
		{"HTML error page", cannedResponse{status: 502, body: "<html>\n<body>Bad Gateway</body></html>"}, 502, "<html> <body>Bad Gateway</body></html>", "http_502"},
		{"truncated JSON", jsonOK(`{"code":0,"msg":"success","data":{"ru`), 200, `{"code":0,"msg":"success","data":{"ru`, "http_200"},
		{"JSON without a code", jsonOK(`{"data":{}}`), 200, `response without a code: {"data":{}}`, "http_200"},
		{"JSON with data of the wrong shape", jsonOK(`{"code":0,"data":{"runs":"many"}}`), 200, "decode runs page", "0"},
		{"long body is cut", cannedResponse{status: 404, body: strings.Repeat("é", 300)}, 404, strings.Repeat("é", 48) + "…", "http_404"},
		{"empty body", cannedResponse{status: 404}, 404, "empty body", "http_404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &observer{}
			c, h := newStaticServer(t, obs, nil, tc.resp)
			_, err := c.ListRuns(context.Background(), testSession)
			var apiErr *feishu.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if apiErr.HTTPStatus != tc.wantStatus || !strings.HasPrefix(apiErr.Msg, tc.wantMsg) {
				t.Errorf("APIError = %+v, want HTTP %d and msg %q", apiErr, tc.wantStatus, tc.wantMsg)
			}
			if len(apiErr.Msg) > 100 && !strings.HasPrefix(apiErr.Msg, "decode") {
				t.Errorf("msg is %d bytes, want at most 100", len(apiErr.Msg))
			}
			if tc.wantStatus == 404 && !feishu.IsNotFound(err) {
				t.Errorf("IsNotFound(%v) = false", err)
			}
			wantServed := 1
			if tc.wantStatus >= 500 {
				wantServed = 3
			}
			if n := h.Served(); n != wantServed {
				t.Errorf("list requests = %d, want %d", n, wantServed)
			}
			if got := obs.Requests(); got[len(got)-1] != "list_runs "+tc.wantCode {
				t.Errorf("requests observed = %q, want the last %q", got, "list_runs "+tc.wantCode)
			}
		})
	}
}

func TestFakeFaultsThatAreNotJSON(t *testing.T) {
	for _, tc := range []struct {
		name       string
		kind       feishufake.FaultKind
		wantStatus int
	}{
		{"plain-text 404", feishufake.NotFoundText, http.StatusNotFound},
		{"malformed JSON", feishufake.MalformedJSON, http.StatusOK},
	} {
		for _, ep := range []feishu.Endpoint{feishu.EndpointListRuns, feishu.EndpointTenantToken} {
			t.Run(tc.name+" from "+string(ep), func(t *testing.T) {
				e := newTestEnv(t, feishufake.Options{})
				e.addRuns(testSession, 3)
				e.fake.SetFault(feishufake.Scope{Endpoint: ep}, feishufake.Fault{Kind: tc.kind})
				_, err := e.client(t).ListRuns(context.Background(), testSession)
				var apiErr *feishu.APIError
				if !errors.As(err, &apiErr) || apiErr.HTTPStatus != tc.wantStatus || apiErr.Endpoint != ep {
					t.Fatalf("err = %v, want an *APIError of %s with HTTP %d", err, ep, tc.wantStatus)
				}
				if !strings.Contains(err.Error(), "list runs of session "+testSession) {
					t.Errorf("err = %v, want it to name the session", err)
				}
				e.wantRequests(t, 1, string(ep)) // not retried
			})
		}
	}
}

func TestLogIDFallsBackToXRequestID(t *testing.T) {
	c, _ := newStaticServer(t, nil, nil, cannedResponse{status: 403, header: map[string]string{"X-Request-Id": "req-123"}, body: `{"code":99991672,"msg":"Access denied"}`})
	_, err := c.ListRuns(context.Background(), testSession)
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || apiErr.LogID != "req-123" || apiErr.Code != feishu.CodeScopeMissing || !feishu.IsAuth(err) {
		t.Fatalf("err = %v, want code 99991672 with log ID req-123", err)
	}
}

func TestNoSecretInErrorsOrPrintedValues(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	cfg := e.config()
	c := e.client(t)

	var texts []string
	if _, err := c.ListRuns(context.Background(), testSession); err != nil {
		t.Fatal(err)
	}
	faults := []feishufake.Fault{
		{Kind: feishufake.InvalidToken},
		{Kind: feishufake.TokenEndpointFailure},
		{Kind: feishufake.NotFoundText},
		{Kind: feishufake.MalformedJSON},
		{Kind: feishufake.ServerError},
		{Kind: feishufake.RateLimit429},
	}
	for _, ep := range []feishu.Endpoint{feishu.EndpointTenantToken, feishu.EndpointListRuns} {
		for _, fl := range faults {
			e.fake.ClearFaults()
			e.fake.ExpireTokens()
			e.fake.SetFault(feishufake.Scope{Endpoint: ep}, fl)
			// Faults that do not apply to an endpoint leave it working.
			if _, err := c.ListRuns(context.Background(), testSession); err != nil {
				texts = append(texts, err.Error())
			}
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		texts = append(texts,
			fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg), fmt.Sprintf(verb, cfg.AppSecret),
			fmt.Sprintf(verb, c), fmt.Sprintf(verb, struct{ C *feishu.Client }{c}))
	}
	for _, v := range []any{cfg.AppSecret, struct{ S feishu.Secret }{cfg.AppSecret}, map[string]feishu.Secret{"s": cfg.AppSecret}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	if b, err := cfg.AppSecret.MarshalText(); err != nil || string(b) != "<secret>" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}

	if len(texts) < 10 {
		t.Fatalf("only %d errors to look at", len(texts))
	}
	secrets := append([]string{testAppSecret}, e.Bearers()...)
	slices.Sort(secrets)
	secrets = slices.Compact(secrets)
	if len(secrets) < 3 {
		t.Fatalf("only %d secrets to look for; the test would prove little", len(secrets))
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%q contains the secret %q", text, s)
			}
		}
	}
	if got := fmt.Sprintf("%v", c); !strings.Contains(got, testAppID) {
		t.Errorf("client prints as %q, want it to name the app", got)
	}
}

// leakForms are the ways an answer may quote a credential: as it is,
// JSON-escaped (as the client sends the app secret) and HTML-escaped.
func leakForms(v string) []string {
	j, _ := json.Marshal(v)
	js := strings.Trim(string(j), `"`)
	forms := []string{v, js, html.EscapeString(v), html.EscapeString(js)}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// assertNoLeak fails the test if err's text, its APIError's fields or the
// token renewals observed quote any of the credentials.
func assertNoLeak(t *testing.T, err error, obs *observer, creds ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("err = nil, want an error")
	}
	texts := map[string]string{"Error()": err.Error()}
	var apiErr *feishu.APIError
	if errors.As(err, &apiErr) {
		texts["APIError.Msg"], texts["APIError.LogID"], texts["APIError.Error()"] = apiErr.Msg, apiErr.LogID, apiErr.Error()
	}
	obs.mu.Lock()
	for _, r := range obs.renewals {
		if r != nil {
			texts["renewal error"] += r.Error() + "\n"
		}
	}
	obs.mu.Unlock()
	for _, c := range creds {
		if c == "" {
			continue
		}
		for _, f := range leakForms(c) {
			for where, text := range texts {
				if strings.Contains(text, f) {
					t.Errorf("%s quotes a credential (%q): %s", where, f, text)
				}
			}
		}
	}
}

func TestCredentialsEchoedByTheAPIAreScrubbedFromErrors(t *testing.T) {
	const oddSecret = `p&ss<wörd>"/\ with spaces`
	for _, tc := range []struct {
		name   string
		secret string
		scope  feishu.Endpoint
		echo   feishufake.EchoForm
		marker string // what an error quoting a JSON msg shows instead
	}{
		{"token endpoint: code 10003 quoting the request", testAppSecret, feishu.EndpointTenantToken, feishufake.EchoJSON, "<secret>"},
		{"token endpoint: text/plain 400", testAppSecret, feishu.EndpointTenantToken, feishufake.EchoText, "<secret>"},
		{"token endpoint: HTML 502", testAppSecret, feishu.EndpointTenantToken, feishufake.EchoHTML, "<secret>"},
		{"token endpoint: a secret with characters that get escaped", oddSecret, feishu.EndpointTenantToken, feishufake.EchoJSON, "<secret>"},
		{"token endpoint: HTML 502 of a secret with characters that get escaped", oddSecret, feishu.EndpointTenantToken, feishufake.EchoHTML, "<secret>"},
		{"list: 99991663 quoting the Authorization header", testAppSecret, feishu.EndpointListRuns, feishufake.EchoJSON, "<token>"},
		{"list: text/plain 400", testAppSecret, feishu.EndpointListRuns, feishufake.EchoText, "<token>"},
		{"list: HTML 502", testAppSecret, feishu.EndpointListRuns, feishufake.EchoHTML, "<token>"},
		{"get run: 99991663 quoting the Authorization header", testAppSecret, feishu.EndpointGetRun, feishufake.EchoJSON, "<token>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.fake.AddApp(testAppID, tc.secret)
			ids := e.addRuns(testSession, 3)
			e.fake.SetFault(feishufake.Scope{Endpoint: tc.scope}, feishufake.Fault{Kind: feishufake.EchoCredentials, Echo: tc.echo})
			c := e.client(t, func(c *feishu.Config) { c.AppSecret = feishu.Secret(tc.secret) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			if tc.scope == feishu.EndpointGetRun {
				_, err = c.GetRun(ctx, testSession, ids[0])
			} else {
				_, err = c.ListRuns(ctx, testSession)
			}
			assertNoLeak(t, err, e.obs, append(e.Bearers(), tc.secret)...)
			// An excerpt of a text or HTML body may end before the echo.
			if tc.echo == feishufake.EchoJSON && !strings.Contains(err.Error(), tc.marker) {
				t.Errorf("err = %v, want the echo shown with %s in place of the credential", err, tc.marker)
			}
			if tc.scope != feishu.EndpointTenantToken && len(e.Bearers()) == 0 {
				t.Error("no request carried a token: the test proves nothing")
			}
		})
	}
}

func TestUserTokenEchoedWith99991668IsScrubbedFromErrors(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	e.fake.AddUserToken("u-first0123456789")
	path := writeTokenFile(t, "u-first0123456789")
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointListRuns},
		feishufake.Fault{Kind: feishufake.EchoCredentials, Code: feishu.CodeTokenUserInvalid})
	c := e.client(t, func(c *feishu.Config) { c.AppID, c.AppSecret, c.UserAccessTokenFile = "", "", path })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.ListRuns(ctx, testSession)
	if !hasCode(err, feishu.CodeTokenUserInvalid) {
		t.Fatalf("err = %v, want code 99991668", err)
	}
	assertNoLeak(t, err, e.obs, append(e.Bearers(), "u-first0123456789")...)
	if !strings.Contains(err.Error(), "Bearer <token>") {
		t.Errorf("err = %v, want the echo shown with <token> in place of the token", err)
	}
}

func TestTokenRejectedThenRenewedIsScrubbedFromLaterErrors(t *testing.T) {
	// A token the API rejected is still a credential: an answer to the
	// request with the renewed token that quotes the old one (a proxy
	// reporting the previous request, say) must not show it either.
	var mu sync.Mutex
	issued := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == feishufake.TokenPath {
			issued++
			_, _ = fmt.Fprintf(w, `{"code":0,"msg":"ok","tenant_access_token":"t-issued%02d-0123456789","expire":7200}`, issued)
			return
		}
		if r.Header.Get("Authorization") == "Bearer t-issued01-0123456789" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"code":99991663,"msg":"Invalid access token for authorization"}`))
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, "bad request; previous Authorization: Bearer t-issued01-0123456789, this one: %s\n", r.Header.Get("Authorization"))
	})
	obs := &observer{}
	c := newClientOf(t, h, func(c *feishu.Config) { c.Observer = obs })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.ListRuns(ctx, testSession)
	assertNoLeak(t, err, obs, "t-issued01-0123456789", "t-issued02-0123456789", testAppSecret)
	if !strings.Contains(err.Error(), "previous Authorization: Bearer <token>, this one: Bearer <token>") {
		t.Errorf("err = %v, want both tokens shown as <token>", err)
	}
}

func TestSecretAtAnExcerptsCutLeavesNoPartOfIt(t *testing.T) {
	// The excerpt of a text body is cut at 100 bytes; a secret straddling
	// the cut must not leave its first bytes behind.
	for pad := 80; pad <= 100; pad += 4 {
		body := strings.Repeat("x", pad) + " " + testAppSecret + " trailing text"
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(body))
		})
		_, err := newClientOf(t, h).ListRuns(context.Background(), testSession)
		if err == nil || strings.Contains(err.Error(), testAppSecret[:6]) {
			t.Errorf("secret after %d bytes: err = %v, want an error without any part of the secret", pad, err)
		}
	}
}
