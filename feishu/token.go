package feishu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// tokenSource provides the Bearer token of every list request.
type tokenSource interface {
	// token returns a token to use now.
	token(ctx context.Context) (string, error)
	// rejects reports whether err says the token was refused, so that it is
	// worth dropping it and trying once more with a fresh one.
	rejects(err error) bool
	// invalidate drops tok if it is still the cached token.
	invalidate(tok string)
	// describe says what kind of credential this is, without any secret.
	describe() string
}

const (
	// renewTimeout bounds a token renewal. The renewal is shared by every
	// caller waiting for it, so it does not end when the caller who started
	// it gives up; this keeps it from running on forever instead.
	renewTimeout = 30 * time.Second
	// minRenewMargin and renewFraction: a token is renewed once less than
	// max(5 min, 10% of its lifetime) remains (but never more than half its
	// lifetime early). Feishu's tokens live 2h, so that is 12 min before
	// expiry: inside the last 30 min, when the endpoint hands out a new
	// token rather than the same one, and long enough before expiry that
	// clock skew and a slow renewal do not matter.
	minRenewMargin = 5 * time.Minute
	renewFraction  = 10
	// maxTokenFileBytes caps the user access token file; tokens (JWTs
	// included) are a few kilobytes at most.
	maxTokenFileBytes = 64 << 10
)

// tenantToken obtains, caches and renews a tenant_access_token.
type tenantToken struct {
	c      *Client
	appID  string
	secret Secret
	flight singleflight.Group

	mu      sync.Mutex
	tok     string
	renewAt time.Time // renew from here on
	expires time.Time // the token is no good from here on
}

func (t *tenantToken) describe() string { return "tenant token of app " + t.appID }

func (t *tenantToken) rejects(err error) bool { return isTokenRejected(err) }

func (t *tenantToken) invalidate(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok == tok {
		t.tok, t.renewAt, t.expires = "", time.Time{}, time.Time{}
	}
}

// cached returns the cached token, and whether it needs no renewal yet.
func (t *tenantToken) cached() (tok string, fresh bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.c.now()
	if t.tok == "" || !now.Before(t.expires) {
		return "", false
	}
	return t.tok, now.Before(t.renewAt)
}

func (t *tenantToken) token(ctx context.Context) (string, error) {
	if tok, fresh := t.cached(); fresh {
		return tok, nil
	}
	// One renewal at a time: callers arriving while it runs wait for its
	// result instead of asking for tokens of their own. DoChan lets each of
	// them stop waiting when its own context ends.
	ch := t.flight.DoChan("", func() (any, error) {
		if tok, fresh := t.cached(); fresh {
			return tok, nil // renewed by the flight that just ended
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), renewTimeout)
		defer cancel()
		tok, err := t.renew(rctx)
		t.c.obs.ObserveTokenRenewal(err)
		if err != nil {
			// A token inside its renewal margin is still valid: use it
			// and let a later call try renewing again.
			if old, _ := t.cached(); old != "" {
				return old, nil
			}
			return "", err
		}
		return tok, nil
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// renew asks the token endpoint for a token and caches it.
func (t *tenantToken) renew(ctx context.Context) (string, error) {
	// A plain struct: Secret marshals as "<secret>" on purpose.
	reqBody, err := json.Marshal(struct {
		AppID     string `json:"app_id"`
		AppSecret string `json:"app_secret"`
	}{t.appID, string(t.secret)})
	if err != nil {
		return "", fmt.Errorf("get tenant token: %w", err)
	}
	endpoint := t.c.base + "/open-apis/auth/v3/tenant_access_token/internal"
	asked := t.c.now()
	resp, err := t.c.do(ctx, EndpointTenantToken, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(reqBody))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		return req, nil
	}, nil)
	if err != nil {
		return "", fmt.Errorf("get tenant token of app %s: %w", t.appID, err)
	}
	var body struct {
		Token  string  `json:"tenant_access_token"`
		Expire float64 `json:"expire"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.Token == "" {
		return "", fmt.Errorf("get tenant token of app %s: %w", t.appID, t.c.apiError(EndpointTenantToken, resp,
			"malformed token response: no tenant_access_token, or expire not a number"))
	}
	// A missing or non-positive expire leaves the token a lifetime of 0: it
	// serves the callers waiting for it, and the next call renews it.
	// The lifetime counts from when the request was sent, not answered,
	// so that a slow answer errs towards renewing early.
	lifetime := time.Duration(max(body.Expire, 0) * float64(time.Second))
	margin := max(minRenewMargin, lifetime/renewFraction)
	margin = min(margin, lifetime/2)
	t.c.known.addToken(body.Token)
	t.mu.Lock()
	t.tok = body.Token
	t.expires = asked.Add(lifetime)
	t.renewAt = t.expires.Add(-margin)
	t.mu.Unlock()
	return body.Token, nil
}

// userTokenFile reads a user_access_token from a file, again whenever the
// file changes, so that whatever refreshes the token can rewrite the file.
type userTokenFile struct {
	path  string
	obs   Observer
	known *knownSecrets

	mu    sync.Mutex
	tok   string // "" when not read yet or dropped
	mtime time.Time
	size  int64
}

func (u *userTokenFile) describe() string { return "user access token from file " + u.path }

// rejects also covers the user-token codes: the file may have been rewritten
// within the file system's timestamp granularity, with the same size, so a
// rejected token is worth one re-read.
func (u *userTokenFile) rejects(err error) bool {
	return isTokenRejected(err) || hasCode(err, CodeTokenUserInvalid) || hasCode(err, CodeUserTokenExpired)
}

func (u *userTokenFile) invalidate(tok string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tok == tok {
		u.tok = ""
	}
}

func (u *userTokenFile) token(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	f, err := os.Open(u.path)
	if err != nil {
		return "", fmt.Errorf("user access token: %w", err)
	}
	defer func() { _ = f.Close() }()
	// Stat the open file, so that the content read below and the mtime/size
	// remembered belong to the same file even if it is replaced meanwhile.
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("user access token: %w", err)
	}
	if u.tok != "" && fi.ModTime().Equal(u.mtime) && fi.Size() == u.size {
		return u.tok, nil
	}
	tok, err := readToken(f)
	u.obs.ObserveTokenRenewal(err)
	if err != nil {
		return "", fmt.Errorf("user access token file %s: %w", u.path, err)
	}
	u.known.addToken(tok)
	u.tok, u.mtime, u.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}

// readToken reads a token file's content, trimmed.
func readToken(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFileBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("larger than %d bytes", maxTokenFileBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("empty")
	}
	if strings.ContainsAny(tok, "\r\n") {
		return "", errors.New("holds more than one line")
	}
	return tok, nil
}
