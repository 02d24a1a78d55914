package feishu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	DefaultBaseURL     = "https://open.feishu.cn"
	DefaultPageSize    = 50
	DefaultMaxPages    = 1000
	DefaultMaxAttempts = 3
	DefaultTimeout     = 10 * time.Second
	// DefaultMaxConcurrency is Config.MaxConcurrency's default.
	DefaultMaxConcurrency = 4
)

const (
	// fallbackPageSize is the list API's documented default page size, used
	// when a larger one is rejected with code 2700001.
	fallbackPageSize = 20
	// maxRateLimitRetries bounds the retries after "slow down" answers, so a
	// throttled app fails its listing instead of waiting forever.
	maxRateLimitRetries = 5
	// maxRateLimitWait caps the wait a rate-limit header asks for; a larger
	// value is more likely a misread header than a real window.
	maxRateLimitWait = 60 * time.Second
	// defaultRateLimitWait is used when neither x-ogw-ratelimit-reset nor
	// Retry-After says how long to wait.
	defaultRateLimitWait = time.Second
	// backoffBase and backoffMax shape the exponential backoff after 5xx
	// and transport errors: 200ms, 400ms, 800ms, … at most 5s, with jitter.
	backoffBase = 200 * time.Millisecond
	backoffMax  = 5 * time.Second
	// maxBodyBytes caps how much of a response is read; a page of runs is
	// a few kilobytes, so anything near this is not a real answer.
	maxBodyBytes = 10 << 20
	// excerptBytes is the longest body excerpt an APIError carries.
	excerptBytes = 100
	// userAgent is sent with every request.
	userAgent = "aily_exporter"
)

// ErrStop, returned by the function given to EachRunPage, ends the listing
// early without an error.
var ErrStop = errors.New("stop listing")

// Config configures a Client for one Feishu app. Exactly one kind of
// credential must be set: AppID with AppSecret (a tenant_access_token is
// obtained and renewed), or UserAccessTokenFile (Credentials.Check).
//
// A zero field means its default, and so does a zero number where none
// would make no sense (Timeout, MaxConcurrency, PageSize, MaxPages,
// MaxAttempts); RateLimit, where none does make sense, is unlimited at 0. A
// negative number is an error.
type Config struct {
	// BaseURL is the Open Platform host, a scheme and a host only
	// (ParseBaseURL); default "https://open.feishu.cn"
	// ("https://open.larksuite.com" for Lark).
	BaseURL string
	// AppID and AppSecret are a self-built app's credentials.
	AppID     string
	AppSecret Secret
	// UserAccessTokenFile holds a user_access_token; it is re-read whenever
	// its modification time or size changes, so it can be rotated in place.
	UserAccessTokenFile string
	// HTTPClient sends the requests; default an http.Client with Timeout
	// whose Transport is a clone of http.DefaultTransport keeping
	// MaxConcurrency idle connections per host.
	HTTPClient *http.Client
	// Timeout is one HTTP request's limit when HTTPClient is nil; default 10s.
	Timeout time.Duration
	// MaxConcurrency is how many requests this client may have in flight at
	// once, so that many idle connections are kept per host and reused
	// rather than a new connection (and TLS handshake) made for each request
	// beyond http.DefaultTransport's 2; default 4. The caller keeps to it;
	// the client does not queue requests. It sizes only the default
	// HTTPClient's transport.
	MaxConcurrency int
	// PageSize is the runs asked per page; default 50. If the API rejects it
	// with code 2700001 the client falls back to 20 and keeps using 20.
	PageSize int
	// MaxPages ends a listing with an error beyond this many pages; default 1000.
	MaxPages int
	// RateLimit is the client-side limit in requests per second, with a burst
	// of the same (rounded up); 0 means unlimited.
	RateLimit float64
	// MaxAttempts is how many times a request is tried on 5xx and transport
	// errors; default 3.
	MaxAttempts int
	// Observer is told about requests, rate limits, token renewals and
	// malformed runs; default NopObserver{}.
	Observer Observer
	// Now is the clock for token lifetimes and request latency; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done, whichever comes first, returning
	// ctx's error in the latter case; default Sleep. Tests inject it to
	// record rate-limit and backoff waits without sleeping.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for backoff jitter; default math/rand/v2.
	Rand func() float64
}

// Client lists the runs of Aily sessions for one Feishu app. It is safe for
// concurrent use; concurrent listings share the token and the rate limiter.
type Client struct {
	base        string
	host        string // base's host, which errors name
	http        *http.Client
	creds       tokenSource
	pageSize    atomic.Int64
	maxPages    int
	maxAttempts int
	limiter     *rate.Limiter // nil when unlimited
	maxBody     int64         // response body cap; a field so tests can lower it
	obs         Observer
	known       *knownSecrets // the credentials no error may show
	now         func() time.Time
	sleep       func(ctx context.Context, d time.Duration) error
	rand        func() float64
}

// NewClient validates cfg, fills in its defaults and returns a Client. It
// makes no request: credentials are first used by the first listing.
func NewClient(cfg Config) (*Client, error) {
	base, err := ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("feishu: base URL %w", err)
	}
	u, err := url.Parse(base)
	if err != nil { // ParseBaseURL parsed it already
		return nil, fmt.Errorf("feishu: base URL: %w", err)
	}
	creds := Credentials{AppID: cfg.AppID, AppSecret: cfg.AppSecret, UserAccessTokenFile: cfg.UserAccessTokenFile}
	if err := creds.Check(); err != nil {
		return nil, fmt.Errorf("feishu: %w", err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"page size", cfg.PageSize}, {"max pages", cfg.MaxPages}, {"max attempts", cfg.MaxAttempts}, {"max concurrency", cfg.MaxConcurrency}} {
		if f.v < 0 {
			return nil, fmt.Errorf("feishu: %s %d is negative", f.name, f.v)
		}
	}
	if cfg.Timeout < 0 { // http.Client would take it for no limit at all
		return nil, fmt.Errorf("feishu: timeout %v is negative", cfg.Timeout)
	}
	if cfg.RateLimit < 0 || math.IsNaN(cfg.RateLimit) || math.IsInf(cfg.RateLimit, 0) {
		return nil, fmt.Errorf("feishu: rate limit %v must be a finite number ≥ 0", cfg.RateLimit)
	}

	c := &Client{
		base:        base,
		host:        u.Host,
		http:        cfg.HTTPClient,
		maxPages:    cmp.Or(cfg.MaxPages, DefaultMaxPages),
		maxAttempts: cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts),
		maxBody:     maxBodyBytes,
		obs:         cfg.Observer,
		known:       newKnownSecrets(cfg.AppSecret),
		now:         cfg.Now,
		sleep:       cfg.Sleep,
		rand:        cfg.Rand,
	}
	if c.http == nil {
		c.http = defaultHTTPClient(cmp.Or(cfg.Timeout, DefaultTimeout), cmp.Or(cfg.MaxConcurrency, DefaultMaxConcurrency))
	}
	c.pageSize.Store(int64(cmp.Or(cfg.PageSize, DefaultPageSize)))
	if c.obs == nil {
		c.obs = NopObserver{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = Sleep
	}
	if c.rand == nil {
		c.rand = rand.Float64
	}
	if cfg.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), int(math.Ceil(cfg.RateLimit)))
	}
	if creds.tenant() {
		c.creds = &tenantToken{c: c, appID: cfg.AppID, secret: cfg.AppSecret}
	} else {
		c.creds = &userTokenFile{path: cfg.UserAccessTokenFile, obs: c.obs, known: c.known}
	}
	return c, nil
}

// Format prints the client without its credentials, whatever the verb, so
// that a client in a struct that gets logged cannot leak a secret or token.
func (c *Client) Format(f fmt.State, _ rune) {
	if c == nil {
		_, _ = io.WriteString(f, "feishu.Client(nil)")
		return
	}
	_, _ = fmt.Fprintf(f, "feishu.Client{base_url: %s, credentials: %s}", c.base, c.creds.describe())
}

// defaultHTTPClient is the HTTP client of a Config without one: a clone of
// http.DefaultTransport (proxy from the environment, dial and TLS timeouts,
// HTTP/2) keeping maxConcurrency idle connections per host, since a client
// talks to a single host.
func defaultHTTPClient(timeout time.Duration, maxConcurrency int) *http.Client {
	dt, ok := http.DefaultTransport.(*http.Transport)
	if !ok { // replaced by the program: use it as it is
		return &http.Client{Timeout: timeout}
	}
	t := dt.Clone()
	t.MaxIdleConnsPerHost = maxConcurrency
	t.MaxIdleConns = max(t.MaxIdleConns, maxConcurrency)
	return &http.Client{Timeout: timeout, Transport: t}
}

// Sleep waits d or until ctx is done, whichever comes first, returning ctx's
// error in the latter case: Config.Sleep's default.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
