// Package config reads and validates the exporter's YAML configuration file:
// the Feishu apps to use, their credentials, and the Aily sessions to watch.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// DefaultBaseURL is the Feishu Open Platform used when an app sets no base_url.
const DefaultBaseURL = feishu.DefaultBaseURL

// The most read of each file, so that a path to /dev/zero or to a huge file
// fails instead of filling the memory.
const (
	maxConfigFileSize   = 16 << 20
	maxSessionsFileSize = 16 << 20 // some 500,000 session IDs
	maxSecretFileSize   = 64 << 10 // as the client caps user_access_token_file
)

// Config is a loaded, validated configuration file.
type Config struct {
	Apps []*App `yaml:"apps"`

	warnings []string
}

// Warnings returns what Load accepted but the reader should hear about (a
// sessions_file that does not exist yet, say, or an app's size), each naming
// its app. The caller logs them.
func (c *Config) Warnings() []string {
	out := slices.Clone(c.warnings)
	for _, a := range c.Apps {
		if w := a.SizeWarning(); w != "" {
			out = append(out, a.where+": "+w)
		}
	}
	return out
}

// ShareSessions says that each app's sessions are shared out over n
// exporters (--shard.key=session): the size that decides per_session's
// default and its warning is an exporter's share, the same for every shard
// so that they all label alike.
func (c *Config) ShareSessions(n int) {
	for _, a := range c.Apps {
		a.shares = n
	}
}

// App is one Feishu app (a set of credentials) and the sessions watched with it.
type App struct {
	// Name is the `app` label; unique, [a-zA-Z0-9_-]+.
	Name string `yaml:"name"`
	// AppID with AppSecret or AppSecretFile obtains a tenant_access_token.
	AppID         string        `yaml:"app_id,omitempty"`
	AppSecret     feishu.Secret `yaml:"app_secret,omitempty"`
	AppSecretFile string        `yaml:"app_secret_file,omitempty"`
	// UserAccessTokenFile holds a user_access_token, used instead of the app
	// credentials. The client re-reads it when it changes.
	UserAccessTokenFile string `yaml:"user_access_token_file,omitempty"`
	// BaseURL is the Open Platform's address; DefaultBaseURL when left out.
	BaseURL string `yaml:"base_url,omitempty"`
	// Sessions are the session IDs written in the file itself.
	Sessions []string `yaml:"sessions,omitempty"`
	// SessionsFile names a file of further session IDs, one a line.
	SessionsFile string `yaml:"sessions_file,omitempty"`
	// SessionsURL is fetched every SessionsRefreshInterval for further
	// session IDs, as Prometheus' http_sd fetches targets: a JSON array of
	// IDs, or the sessions_file format (docs/discovery.md).
	SessionsURL string `yaml:"sessions_url,omitempty"`
	// SessionsRefreshInterval is how often SessionsURL is fetched;
	// DefaultSessionsRefreshInterval when left out.
	SessionsRefreshInterval time.Duration `yaml:"sessions_refresh_interval,omitempty"`
	// SessionsHTTPConfig are the HTTP client settings of SessionsURL's
	// fetches: credentials, TLS, proxy. A pointer, so that fmt prints an
	// address rather than the secrets it holds.
	SessionsHTTPConfig *HTTPClient `yaml:"sessions_http_config,omitempty"`
	// PerSession true gives the app's run metrics a session_id label;
	// false sums them per app and leaves out the aily_session_* series.
	// Unset, it is true for an app of at most ManySessions sessions.
	PerSession *bool `yaml:"per_session,omitempty"`
	// DailyBudget overrides --poll.daily-budget for this app: the list and
	// get-run requests it may make a day on average; 0 means no average cap.
	DailyBudget *float64 `yaml:"daily_budget,omitempty"`
	// MetadataLabels are top-level keys of the runs' metadata JSON whose
	// values become labels of the app's run counters and histograms.
	MetadataLabels []string `yaml:"metadata_labels,omitempty"`
	// MetadataLabelLimit is how many distinct values of each metadata
	// label have series of their own, the rest "other";
	// DefaultMetadataLabelLimit when left out.
	MetadataLabelLimit *int `yaml:"metadata_label_limit,omitempty"`

	// where names the app in warnings: its name and line.
	where string
	// shares is how many exporters share the app's sessions (ShareSessions);
	// 0 or 1: this one has them all.
	shares int

	// secretFromFile is AppSecretFile's content, read at load. A pointer
	// because fmt prints unexported fields by reflection, bypassing
	// Secret's Format; behind a pointer %v shows only an address.
	secretFromFile *feishu.Secret
	fileContent    []byte   // SessionsFile's content as last read
	fileSessions   []string // the IDs parsed from fileContent
	urlSessions    []string // the IDs last fetched from SessionsURL
}

// DefaultSessionsRefreshInterval is how often sessions_url is fetched when
// sessions_refresh_interval is left out, as Prometheus' http_sd.
const DefaultSessionsRefreshInterval = time.Minute

// minSessionsRefreshInterval is the shortest sessions_refresh_interval: the
// URL is someone's service, and sessions are polled no faster than
// --poll.min-interval anyway.
const minSessionsRefreshInterval = time.Second

var (
	namePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	// envPattern matches ${NAME}. A bare $NAME is left alone, with a
	// warning, because secrets may well contain a dollar sign.
	envPattern = regexp.MustCompile(`\$\{([^}]*)\}`)
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// bareEnv matches the $NAME that is not expanded, which deserves a
	// warning: it is more often a mistaken reference than part of a secret.
	bareEnv = regexp.MustCompile(`\$[A-Za-z_][A-Za-z0-9_]*`)
	// unknownField rewrites yaml.v3's "field x not found in type config.App"
	// (or config.plain, a type of prometheus/common's, in sessions_http_config).
	unknownField = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)
)

// Load reads, parses and validates the configuration file at path. Relative
// paths inside it (app_secret_file, user_access_token_file, sessions_file) are
// taken relative to the file's directory. ${VAR} in app_secret is replaced by
// the environment variable VAR.
func Load(path string) (*Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := readFile(path, maxConfigFileSize)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	cfg, err := parse(data, filepath.Dir(path), lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// parse decodes data strictly, then resolves and validates every app.
func parse(data []byte, dir string, lookupEnv func(string) (string, bool)) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty: at least one app is required under apps")
		}
		if te := (*yaml.TypeError)(nil); !errors.As(err, &te) {
			if located := httpClientError(data); located != nil {
				return nil, located
			}
		}
		return nil, yamlError(err, data)
	}
	// A second decode into a node only to say on which line each app starts;
	// strictness was checked above.
	lines := appLines(data)

	if len(cfg.Apps) == 0 {
		return nil, errors.New("no apps: at least one app is required under apps")
	}
	seen := make(map[string]int, len(cfg.Apps))
	for i, app := range cfg.Apps {
		where := fmt.Sprintf("apps[%d]", i)
		if i < len(lines) {
			where += fmt.Sprintf(" (line %d)", lines[i])
		}
		if app == nil {
			return nil, fmt.Errorf("%s: empty app", where)
		}
		if app.Name != "" {
			where = fmt.Sprintf("app %q", app.Name)
			if i < len(lines) {
				where += fmt.Sprintf(" (line %d)", lines[i])
			}
		}
		app.where = where
		warnings, err := app.resolve(dir, lookupEnv)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for _, w := range warnings {
			cfg.warnings = append(cfg.warnings, where+": "+w)
		}
		if j, dup := seen[app.Name]; dup {
			return nil, fmt.Errorf("%s: name is already used by apps[%d]; app names must be unique", where, j)
		}
		seen[app.Name] = i
	}
	return &cfg, nil
}

// yamlError words yaml.v3's decoding errors for people: the line and the
// unknown key, or the key whose value has the wrong shape and the shape
// expected, without Go type names.
func yamlError(err error, data []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("parse YAML: %w", err)
	}
	shapes := shapeErrors(data, &Config{})
	var msgs []string
	for _, m := range te.Errors {
		if len(shapes) > 0 && strings.Contains(m, "cannot unmarshal") {
			continue // said better by the shapes, merged below in line order
		}
		msgs = append(msgs, unknownField.ReplaceAllStringFunc(m, func(s string) string {
			sub := unknownField.FindStringSubmatch(s)
			var where string
			switch sub[2] {
			case "Config":
				where = "at the top level"
			case "App":
				where = "in an app"
			default:
				// Deeper down, in sessions_http_config, whose types are
				// prometheus/common's: the path says where.
				where = "in " + keyPath(data, lineOf(m), sub[1])
			}
			return fmt.Sprintf("unknown key %q %s", sub[1], where)
		}))
	}
	for _, sh := range shapes {
		i := 0
		for i < len(msgs) && lineOf(msgs[i]) <= sh.line {
			i++
		}
		msgs = slices.Insert(msgs, i, sh.msg)
	}
	return fmt.Errorf("parse YAML: %s", strings.Join(msgs, "; "))
}

// lineOf reads the line of a yaml.v3 error message ("line 3: …"); 0 if it
// has none.
func lineOf(msg string) int {
	var n int
	if _, err := fmt.Sscanf(msg, "line %d:", &n); err != nil {
		return 0
	}
	return n
}

// appLines returns the line each item of apps starts on.
func appLines(data []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "apps" {
			var lines []int
			for _, item := range root.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}

// resolve validates the app, applies defaults, expands ${VAR} in app_secret,
// reads app_secret_file and sessions_file, and makes relative paths absolute
// against dir. It returns what is accepted but worth a warning.
func (a *App) resolve(dir string, lookupEnv func(string) (string, bool)) (warnings []string, err error) {
	if a.Name == "" {
		return nil, errors.New("name is required")
	}
	if !namePattern.MatchString(a.Name) {
		return nil, fmt.Errorf("name %q may hold only letters, digits, '_' and '-'", a.Name)
	}

	if b := a.DailyBudget; b != nil && (*b < 0 || math.IsNaN(*b) || math.IsInf(*b, 0)) {
		return nil, fmt.Errorf("daily_budget %v must be a number of requests a day, 0 (no cap) or more", *b)
	}

	if err := a.checkMetadataLabels(); err != nil {
		return nil, err
	}

	warnings, err = a.resolveCredentials(dir, lookupEnv)
	if err != nil {
		return nil, err
	}

	if a.BaseURL, err = feishu.ParseBaseURL(a.BaseURL); err != nil {
		return nil, fmt.Errorf("base_url %w", err)
	}

	listed := make(map[string]bool, len(a.Sessions))
	for i, id := range a.Sessions {
		if err := CheckSessionID(id); err != nil {
			return nil, fmt.Errorf("sessions[%d]: %w", i, err)
		}
		if listed[id] {
			return nil, fmt.Errorf("sessions[%d]: session %q is listed twice", i, id)
		}
		listed[id] = true
	}
	if err := a.resolveSessionsURL(dir); err != nil {
		return nil, err
	}
	missing := false
	if a.SessionsFile != "" {
		a.SessionsFile = absolute(dir, a.SessionsFile)
		// Like Prometheus' file_sd: a file not there yet (a volume mounted
		// late) adds no sessions, and the first scrape after it appears
		// reads it. A file that is there but wrong is an error.
		if _, err := a.RefreshSessions(); errors.Is(err, fs.ErrNotExist) {
			missing = true
			warnings = append(warnings,
				fmt.Sprintf("sessions_file %s does not exist: it adds no sessions until it appears", a.SessionsFile))
		} else if err != nil {
			return nil, err
		}
	}
	// An app whose sessions all come from sessions_url has none until the
	// first fetch, which comes after the load: none is no error then.
	if len(a.AllSessions()) == 0 && !missing && a.SessionsURL == "" {
		if a.SessionsFile != "" {
			return nil, fmt.Errorf("no sessions: sessions is empty and sessions_file %s lists none", a.SessionsFile)
		}
		return nil, errors.New("no sessions: set sessions, sessions_file or sessions_url (the API cannot list sessions; see docs/discovery.md)")
	}
	return warnings, nil
}

// DefaultMetadataLabelLimit is metadata_label_limit when left out.
const DefaultMetadataLabelLimit = 50

// maxMetadataLabelLimit bounds metadata_label_limit: each value is a set of
// series for every combination with the other labels' values.
const maxMetadataLabelLimit = 10_000

// labelNamePattern is a Prometheus label name (the classic character set,
// which every Prometheus version and query accepts unquoted).
var labelNamePattern = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are the labels a metadata label cannot be: those of the run
// metrics, the histograms' le, the label shards are told apart by, and the
// target labels Prometheus adds (it would rename ours exported_*).
var reservedLabels = []string{"app", "session_id", "status", "code", "error_code", "le", "shard", "instance", "job"}

// checkMetadataLabels checks metadata_labels and metadata_label_limit.
func (a *App) checkMetadataLabels() error {
	seen := make(map[string]int, len(a.MetadataLabels))
	for i, l := range a.MetadataLabels {
		switch {
		case !labelNamePattern.MatchString(l):
			return fmt.Errorf("metadata_labels[%d]: %q is not a label name: letters, digits and '_', not starting with a digit "+
				"(a metadata key that is not one cannot be a label)", i, l)
		case strings.HasPrefix(l, "__"):
			return fmt.Errorf("metadata_labels[%d]: %q: label names starting with \"__\" are reserved to Prometheus", i, l)
		case slices.Contains(reservedLabels, l):
			return fmt.Errorf("metadata_labels[%d]: %q is a label the exporter or Prometheus sets already (%s)",
				i, l, strings.Join(reservedLabels, ", "))
		}
		if j, dup := seen[l]; dup {
			return fmt.Errorf("metadata_labels[%d]: %q is listed twice (also metadata_labels[%d])", i, l, j)
		}
		seen[l] = i
	}
	if n := a.MetadataLabelLimit; n != nil {
		switch {
		case len(a.MetadataLabels) == 0:
			return errors.New("metadata_label_limit is set without metadata_labels: it is how many values of each have series of their own")
		case *n < 1 || *n > maxMetadataLabelLimit:
			return fmt.Errorf("metadata_label_limit %d must be from 1 to %d", *n, maxMetadataLabelLimit)
		}
	}
	return nil
}

// LabelLimit returns how many distinct values of each metadata label have
// series of their own.
func (a *App) LabelLimit() int {
	if a.MetadataLabelLimit != nil {
		return *a.MetadataLabelLimit
	}
	return DefaultMetadataLabelLimit
}

// resolveSessionsURL checks sessions_url and the keys that go with it,
// applies the default refresh interval, and makes the relative paths of
// sessions_http_config (bearer_token_file, tls_config's ca_file…) absolute
// against dir.
func (a *App) resolveSessionsURL(dir string) error {
	if a.SessionsURL == "" {
		switch {
		case a.SessionsRefreshInterval != 0:
			return errors.New("sessions_refresh_interval is set without sessions_url: it is how often sessions_url is fetched")
		case a.SessionsHTTPConfig != nil:
			return errors.New("sessions_http_config is set without sessions_url: it is how sessions_url is fetched")
		}
		return nil
	}
	u, err := url.Parse(a.SessionsURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("sessions_url %q must be an absolute http(s) URL, such as https://agent.example.com/aily/sessions",
			feishu.RedactURL(a.SessionsURL))
	}
	if u.User != nil {
		// /config, /status and the logs show the URL: a password has no
		// place in it.
		return fmt.Errorf("sessions_url %q must not hold user info: set sessions_http_config's basic_auth instead",
			feishu.RedactURL(a.SessionsURL))
	}
	switch {
	case a.SessionsRefreshInterval == 0:
		a.SessionsRefreshInterval = DefaultSessionsRefreshInterval
	case a.SessionsRefreshInterval < minSessionsRefreshInterval:
		return fmt.Errorf("sessions_refresh_interval %v must be at least %v", a.SessionsRefreshInterval, minSessionsRefreshInterval)
	}
	if a.SessionsHTTPConfig != nil {
		hc := a.SessionsHTTPConfig.Prometheus()
		hc.SetDirectory(dir)
		// Validate also moves bearer_token(_file) under authorization, as
		// Prometheus does.
		if err := hc.Validate(); err != nil {
			return fmt.Errorf("sessions_http_config: %w", err)
		}
		*a.SessionsHTTPConfig = HTTPClient(hc)
	}
	return nil
}

// ManySessions is the most sessions an app has per-session series for
// unless per_session says otherwise. Each session adds some 25 series to
// every scrape: answering 10,000 sessions' takes about 3 s, 100,000
// sessions' half a minute, more than any usual scrape_timeout
// (docs/performance.md).
const ManySessions = 10_000

// size returns how many sessions an exporter has of the app: all of them,
// or its share when they are shared out (ShareSessions), rounded up, and how
// to say it.
func (a *App) size() (int, string) {
	n := len(a.AllSessions())
	if a.shares <= 1 {
		return n, fmt.Sprintf("%d sessions", n)
	}
	share := (n + a.shares - 1) / a.shares
	return share, fmt.Sprintf("%d sessions a shard (%d over %d shards)", share, n, a.shares)
}

// SizeWarning returns, for an app of more than ManySessions sessions (an
// exporter's share of them when shared out) whose run metrics are per
// session or were summed because of its size, what that means and what to
// do; "" otherwise.
func (a *App) SizeWarning() string {
	n, sessions := a.size()
	switch {
	case n <= ManySessions || (a.PerSession != nil && !*a.PerSession):
		return ""
	case a.PerSession == nil:
		return fmt.Sprintf("%s: the run metrics are summed per app (per_session is not set, and above %d sessions "+
			"it means false); set per_session: false to say so, or shard the sessions over several exporters to keep "+
			"series per session", sessions, ManySessions)
	}
	return fmt.Sprintf("%s with per_session: true: every scrape serves some 25 series for each session, "+
		"and answering that many takes time out of the scrape's deadline, leaving less or none for polling; "+
		"above %d sessions, set per_session: false, or shard: split the sessions over several exporters",
		sessions, ManySessions)
}

// resolveCredentials expands ${VAR} in app_secret, reads app_secret_file
// and checks the credentials these make by feishu's rule. It returns what is
// accepted but worth a warning.
func (a *App) resolveCredentials(dir string, lookupEnv func(string) (string, bool)) (warnings []string, err error) {
	switch {
	case a.AppSecret != "" && a.AppSecretFile != "":
		return nil, errors.New("app_secret and app_secret_file cannot both be set")
	case a.AppSecret != "":
		raw := string(a.AppSecret)
		s, err := expandEnv(raw, lookupEnv)
		if err != nil {
			return nil, fmt.Errorf("app_secret: %w", err)
		}
		if strings.TrimSpace(s) == "" {
			return nil, errors.New("app_secret is empty after expanding environment variables")
		}
		a.AppSecret = feishu.Secret(s)
		warnings = bareEnvWarnings(raw)
	case a.AppSecretFile != "":
		a.AppSecretFile = absolute(dir, a.AppSecretFile)
		b, err := readFile(a.AppSecretFile, maxSecretFileSize)
		if err != nil {
			// The *PathError names the file, never its content.
			return nil, fmt.Errorf("app_secret_file: %w", err)
		}
		// Files written by editors and `echo` end in a newline that is no
		// part of the secret.
		s := strings.TrimSpace(string(b))
		if s == "" {
			return nil, fmt.Errorf("app_secret_file %s is empty", a.AppSecretFile)
		}
		secret := feishu.Secret(s)
		a.secretFromFile = &secret
	}
	if a.UserAccessTokenFile != "" {
		a.UserAccessTokenFile = absolute(dir, a.UserAccessTokenFile)
		// Checked now so that --config.check and a reload catch a wrong
		// path; the client reads the token itself, and again when it changes.
		if _, err := os.Stat(a.UserAccessTokenFile); err != nil {
			return nil, fmt.Errorf("user_access_token_file: %w", err)
		}
	}
	// The rule is the client's; the words are the file's, where the secret
	// may also come from app_secret_file.
	creds := feishu.Credentials{AppID: a.AppID, AppSecret: a.Secret(), UserAccessTokenFile: a.UserAccessTokenFile}
	switch err := creds.Check(); {
	case errors.Is(err, feishu.ErrMixedCredentials):
		return nil, errors.New("user_access_token_file cannot be combined with app_id/app_secret/app_secret_file: choose one kind of credential")
	case errors.Is(err, feishu.ErrNoCredentials):
		return nil, errors.New("no credentials: set app_id with app_secret or app_secret_file, or user_access_token_file")
	case errors.Is(err, feishu.ErrNoAppID):
		return nil, errors.New("app_id is required with app_secret or app_secret_file")
	case errors.Is(err, feishu.ErrNoAppSecret):
		return nil, errors.New("app_secret or app_secret_file is required with app_id")
	case err != nil:
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return warnings, nil
}

// bareEnvWarnings warns of a $NAME in app_secret, which is not expanded. It
// shows the secret only when the whole of it is such a reference.
func bareEnvWarnings(raw string) []string {
	outside := envPattern.ReplaceAllString(raw, "")
	if !bareEnv.MatchString(outside) {
		return nil
	}
	if v := strings.TrimSpace(raw); bareEnv.FindString(v) == v {
		return []string{fmt.Sprintf("app_secret %q is taken literally: write ${%s} for the environment variable", v, v[1:])}
	}
	return []string{"app_secret holds a '$' followed by a name outside ${…}; it is taken literally: write ${NAME} for an environment variable"}
}

// expandEnv replaces each ${NAME} in s by the variable's value; a variable that
// is not set is an error naming it.
func expandEnv(s string, lookupEnv func(string) (string, bool)) (string, error) {
	var err error
	out := envPattern.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if !envName.MatchString(name) {
			if err == nil {
				err = fmt.Errorf("%q is not a valid environment variable reference", m)
			}
			return ""
		}
		v, ok := lookupEnv(name)
		if !ok && err == nil {
			err = fmt.Errorf("environment variable %s is not set", name)
		}
		return v
	})
	return out, err
}

// readFile reads the file at path, or fails naming it and the limit if it
// holds more than limit bytes. It never reads more than limit+1.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		size := fmt.Sprintf("%d KiB", limit>>10)
		if limit%(1<<20) == 0 {
			size = fmt.Sprintf("%d MiB", limit>>20)
		}
		return nil, fmt.Errorf("%s is larger than %s, the most read from such a file", path, size)
	}
	return b, nil
}

func absolute(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// CheckSessionID returns what is wrong with id as a session ID, nil if
// nothing: an empty ID, or one with a character that cannot be in one.
func CheckSessionID(id string) error {
	if strings.TrimSpace(id) == "" {
		return errors.New("empty session ID")
	}
	// The ID goes into the URL path; a space or slash can only be a mistake
	// (two IDs on one line, a pasted URL).
	if strings.ContainsAny(id, " \t/?#") {
		return fmt.Errorf("session ID %q contains a space, '/', '?' or '#'", id)
	}
	return nil
}

// SeriesPerSession reports whether the app's run metrics carry session_id:
// per_session, or when it is not set, whether the app has at most
// ManySessions sessions (an exporter's share of them when shared out), so
// that a scrape of an app of any size answers within its deadline by
// default.
func (a *App) SeriesPerSession() bool {
	if a.PerSession != nil {
		return *a.PerSession
	}
	n, _ := a.size()
	return n <= ManySessions
}

// RequestBudget returns the app's daily request budget: daily_budget, or def
// (--poll.daily-budget) when it is not set; 0 means no average cap.
func (a *App) RequestBudget(def float64) float64 {
	if a.DailyBudget != nil {
		return *a.DailyBudget
	}
	return def
}

// Secret returns the app secret to use: app_secret after ${VAR} expansion, or
// the content of app_secret_file. It is empty for a user-token app.
func (a *App) Secret() feishu.Secret {
	if a.AppSecret == "" && a.secretFromFile != nil {
		return *a.secretFromFile
	}
	return a.AppSecret
}

// AllSessions returns the sessions to watch: those of sessions, then those of
// sessions_file as last read, then those last fetched from sessions_url,
// each once.
func (a *App) AllSessions() []string {
	out := make([]string, 0, len(a.Sessions)+len(a.fileSessions)+len(a.urlSessions))
	seen := make(map[string]bool, cap(out))
	for _, ids := range [][]string{a.Sessions, a.fileSessions, a.urlSessions} {
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// SetURLSessions sets the sessions last fetched from sessions_url; the
// fetching is the caller's (package discovery). It is not safe for
// concurrent use.
func (a *App) SetURLSessions(ids []string) { a.urlSessions = slices.Clone(ids) }

// RefreshSessions re-reads sessions_file and reports whether its content
// changed. On an error the sessions last read are kept. It is cheap when
// nothing changed (one read of a small file, no parsing), so callers may
// call it on every scrape. It is not safe for concurrent use.
func (a *App) RefreshSessions() (changed bool, err error) {
	if a.SessionsFile == "" {
		return false, nil
	}
	b, err := readFile(a.SessionsFile, maxSessionsFileSize)
	if err != nil {
		return false, fmt.Errorf("sessions_file: %w", err)
	}
	if a.fileContent != nil && bytes.Equal(b, a.fileContent) {
		return false, nil
	}
	ids, err := ParseSessions(b)
	if err != nil {
		return false, fmt.Errorf("sessions_file %s: %w", a.SessionsFile, err)
	}
	a.fileContent = b
	a.fileSessions = ids
	return true, nil
}

// ParseSessions parses a sessions file: one session ID a line; blank lines
// and everything after a # are ignored; an ID listed twice counts once (such
// files are often generated, and a repeat is harmless). sessions_url's
// text/plain answers are read by it too.
func ParseSessions(b []byte) ([]string, error) {
	var ids []string
	seen := map[string]bool{}
	for n, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if err := CheckSessionID(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if !seen[line] {
			seen[line] = true
			ids = append(ids, line)
		}
	}
	return ids, nil
}

// Redacted returns the configuration as YAML with every secret replaced by
// "<secret>", for the /config endpoint, and per_session as in force.
func (c *Config) Redacted() ([]byte, error) {
	out := struct {
		Apps []App `yaml:"apps"`
	}{}
	for _, a := range c.Apps {
		// A copy of the App itself, so that a field added to it shows here
		// without being declared twice. The secret field is overwritten with
		// the placeholder, so that redaction does not depend on how
		// feishu.Secret marshals either.
		r := *a
		if r.AppSecret != "" {
			r.AppSecret = redactedSecret
		}
		r.SessionsHTTPConfig = a.SessionsHTTPConfig.redacted()
		perSession := a.SeriesPerSession()
		r.PerSession = &perSession
		out.Apps = append(out.Apps, r)
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("marshal configuration: %w", err)
	}
	return b, nil
}

// redactedSecret is what /config shows instead of a secret.
const redactedSecret feishu.Secret = "<secret>"
