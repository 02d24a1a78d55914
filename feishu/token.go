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
	// refused is told that the API refused tok, a token just renewed or
	// read again after a first refusal, with err; it returns the
	// *CredentialError to fail the request with.
	refused(tok string, err error) error
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
	// tokenBackoffBase and tokenBackoffMax shape the back-off after failed
	// renewals: 1s, 2s, 4s, … at most 5 min, from the end of the failed
	// renewal. A wrong secret then costs a token request every 5 min, not
	// one per session and scrape.
	tokenBackoffBase = time.Second
	tokenBackoffMax  = 5 * time.Minute
)

// tenantToken obtains, caches and renews a tenant_access_token.
//
// One renewal at a time: callers arriving while it runs wait for its result
// (each until its own context ends) instead of asking for tokens of their
// own. A failed renewal starts a back-off (tokenBackoffBase doubling up to
// tokenBackoffMax, reset by a renewal that works): until it expires, and
// while the renewal that ends it is under way, the app's requests fail at
// once with that renewal's error instead of asking for tokens or waiting,
// so that a wrong secret costs one token request per back-off, not one per
// session and scrape, and a token endpoint that hangs holds up no scrape
// after the first.
type tenantToken struct {
	c      *Client
	appID  string
	secret Secret

	mu       sync.Mutex
	tok      string
	renewAt  time.Time // renew from here on
	expires  time.Time // the token is no good from here on
	renewing *renewal  // the renewal under way; nil when none is
	// failed is the *CredentialError of the last renewal when it failed,
	// nil once one works; failures counts the failed renewals in a row,
	// and retryAt is when the back-off after them ends.
	failed   error
	failures int
	retryAt  time.Time
}

// renewal is a renewal under way; done is closed when tok or err is set.
type renewal struct {
	done chan struct{}
	tok  string
	err  error
}

func (t *tenantToken) describe() string { return "tenant token of app " + t.appID }

func (t *tenantToken) rejects(err error) bool { return isTokenRejected(err) }

func (t *tenantToken) invalidate(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.invalidateLocked(tok)
}

func (t *tenantToken) invalidateLocked(tok string) {
	if t.tok == tok {
		t.tok, t.renewAt, t.expires = "", time.Time{}, time.Time{}
	}
}

// refused drops the token the API refused and backs off as after a failed
// renewal: a token refused right after its renewal will not do better on
// the next request.
func (t *tenantToken) refused(tok string, err error) error {
	ce := &CredentialError{Credential: t.describe(), Refused: true, Err: err}
	t.mu.Lock()
	t.invalidateLocked(tok)
	t.failLocked(ce)
	t.mu.Unlock()
	t.c.obs.ObserveTokenRenewal(ce)
	return ce
}

// failLocked records a failed renewal (or a refused token) and starts the
// back-off. t.mu is held.
func (t *tenantToken) failLocked(err error) {
	t.failures++
	wait := min(tokenBackoffBase<<min(t.failures-1, 16), tokenBackoffMax)
	t.failed, t.retryAt = err, t.c.now().Add(wait)
}

// cachedLocked returns the cached token, and whether it needs no renewal
// yet. t.mu is held.
func (t *tenantToken) cachedLocked(now time.Time) (tok string, fresh bool) {
	if t.tok == "" || !now.Before(t.expires) {
		return "", false
	}
	return t.tok, now.Before(t.renewAt)
}

func (t *tenantToken) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	now := t.c.now()
	tok, fresh := t.cachedLocked(now)
	failed := t.failed
	if fresh {
		t.mu.Unlock()
		return tok, nil
	}
	r := t.renewing
	started := false
	if r == nil && (failed == nil || !now.Before(t.retryAt)) {
		r = &renewal{done: make(chan struct{})}
		t.renewing = r
		started = true
		// Not cut short by the context of the caller who starts it: the
		// callers waiting for it share it. renewTimeout bounds it.
		go t.renew(context.WithoutCancel(ctx), r)
	}
	t.mu.Unlock()
	if failed != nil && !started {
		// Backing off, or another caller's renewal ends the back-off and
		// may fail alike or hang: this caller does not wait for it. The
		// caller who starts that renewal does, within its own context, so
		// that the poll which ends a back-off is not failed for nothing. A
		// token inside its renewal margin is still valid: use it.
		if tok != "" {
			return tok, nil
		}
		return "", failed
	}
	select {
	case <-ctx.Done():
		return "", t.c.transportError(EndpointTenantToken, ctx.Err())
	case <-r.done:
		return r.tok, r.err
	}
}

// renew runs renewal r: it asks the token endpoint for a token and caches
// it, or starts the back-off.
func (t *tenantToken) renew(ctx context.Context, r *renewal) {
	ctx, cancel := context.WithTimeout(ctx, renewTimeout)
	defer cancel()
	got, err := t.fetch(ctx)
	t.mu.Lock()
	if err != nil {
		err = &CredentialError{Credential: t.describe(), Err: err}
		t.failLocked(err)
		// A token inside its renewal margin is still valid: the callers
		// waiting use it, and a later call tries renewing again.
		if old, _ := t.cachedLocked(t.c.now()); old != "" {
			r.tok = old
		} else {
			r.err = err
		}
	} else {
		t.tok, t.expires, t.renewAt = got.tok, got.expires, got.renewAt
		t.failed, t.failures, t.retryAt = nil, 0, time.Time{}
		r.tok = got.tok
	}
	t.renewing = nil
	t.mu.Unlock()
	t.c.obs.ObserveTokenRenewal(err)
	close(r.done)
}

// issuedToken is a token the endpoint issued, and when to renew it.
type issuedToken struct {
	tok              string
	renewAt, expires time.Time
}

// fetch asks the token endpoint for a token.
func (t *tenantToken) fetch(ctx context.Context) (issuedToken, error) {
	// A plain struct: Secret marshals as "<secret>" on purpose.
	reqBody, err := json.Marshal(struct {
		AppID     string `json:"app_id"`
		AppSecret string `json:"app_secret"`
	}{t.appID, string(t.secret)})
	if err != nil {
		return issuedToken{}, fmt.Errorf("get tenant token: %w", err)
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
		return issuedToken{}, fmt.Errorf("get tenant token of app %s: %w", t.appID, err)
	}
	var body struct {
		Token  string  `json:"tenant_access_token"`
		Expire float64 `json:"expire"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.Token == "" {
		return issuedToken{}, fmt.Errorf("get tenant token of app %s: %w", t.appID, t.c.apiError(EndpointTenantToken, resp,
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
	expires := asked.Add(lifetime)
	return issuedToken{tok: body.Token, expires: expires, renewAt: expires.Add(-margin)}, nil
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
	return isTokenRejected(err) || hasCode(err, CodeTokenUserInvalid, CodeUserTokenExpired)
}

func (u *userTokenFile) invalidate(tok string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tok == tok {
		u.tok = ""
	}
}

// refused keeps the token: the file is read again when it changes.
func (u *userTokenFile) refused(_ string, err error) error {
	ce := &CredentialError{Credential: u.describe(), Refused: true, Err: err}
	u.obs.ObserveTokenRenewal(ce)
	return ce
}

func (u *userTokenFile) token(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	f, err := os.Open(u.path)
	if err != nil {
		return "", u.fail(fmt.Errorf("user access token: %w", err))
	}
	defer func() { _ = f.Close() }()
	// Stat the open file, so that the content read below and the mtime/size
	// remembered belong to the same file even if it is replaced meanwhile.
	fi, err := f.Stat()
	if err != nil {
		return "", u.fail(fmt.Errorf("user access token: %w", err))
	}
	if u.tok != "" && fi.ModTime().Equal(u.mtime) && fi.Size() == u.size {
		return u.tok, nil
	}
	tok, err := readToken(f)
	if err != nil {
		return "", u.fail(fmt.Errorf("user access token file %s: %w", u.path, err))
	}
	u.obs.ObserveTokenRenewal(nil)
	u.known.addToken(tok)
	u.tok, u.mtime, u.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}

// fail reports a failed read of the file and returns its *CredentialError.
func (u *userTokenFile) fail(err error) error {
	ce := &CredentialError{Credential: u.describe(), Err: err}
	u.obs.ObserveTokenRenewal(ce)
	return ce
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
