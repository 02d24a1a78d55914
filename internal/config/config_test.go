package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// env is the environment the tests' ${VAR} references see.
func env(name string) (string, bool) {
	v, ok := map[string]string{
		"HELPDESK_SECRET": "s3cr3t-from-env",
		"EMPTY":           "",
	}[name]
	return v, ok
}

// writeFiles writes name → content into a new directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mustLoad loads dir's aily.yml, failing the test on an error.
func mustLoad(t *testing.T, dir string) *Config {
	t.Helper()
	cfg, err := load(filepath.Join(dir, "aily.yml"), env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestLoadFullExample(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"helpdesk.secret":   "s3cr3t-from-file\n",
		"user.token":        "u-token\n",
		"helpdesk.sessions": "# generated\nsession_b\n\n  session_c  # trailing comment\nsession_a\nsession_b\n",
		"aily.yml": `
apps:
  - name: helpdesk
    app_id: cli_a5xxxxxxxxxxxxx
    app_secret_file: helpdesk.secret
    base_url: https://open.larksuite.com/
    sessions:
      - session_a
    sessions_file: helpdesk.sessions
  - name: sales-bot_2
    app_id: cli_b
    app_secret: "pre-${HELPDESK_SECRET}-post"
    sessions: [session_x]
  - name: personal
    user_access_token_file: user.token
    sessions: [session_y]
`,
	})
	cfg := mustLoad(t, dir)
	if len(cfg.Apps) != 3 {
		t.Fatalf("got %d apps, want 3", len(cfg.Apps))
	}
	helpdesk, sales, personal := cfg.Apps[0], cfg.Apps[1], cfg.Apps[2]

	if got := string(helpdesk.Secret()); got != "s3cr3t-from-file" {
		t.Errorf("helpdesk secret = %q, want the file's content without its newline", got)
	}
	if helpdesk.AppSecretFile != filepath.Join(dir, "helpdesk.secret") {
		t.Errorf("app_secret_file = %q, want it relative to the config file", helpdesk.AppSecretFile)
	}
	if helpdesk.BaseURL != "https://open.larksuite.com" {
		t.Errorf("base_url = %q, want the trailing slash trimmed", helpdesk.BaseURL)
	}
	if diff := cmp.Diff([]string{"session_a", "session_b", "session_c"}, helpdesk.AllSessions()); diff != "" {
		t.Errorf("helpdesk sessions (-want +got):\n%s", diff)
	}
	if got := string(sales.Secret()); got != "pre-s3cr3t-from-env-post" {
		t.Errorf("sales secret = %q, want ${HELPDESK_SECRET} expanded", got)
	}
	if sales.BaseURL != DefaultBaseURL {
		t.Errorf("base_url = %q, want the default %q", sales.BaseURL, DefaultBaseURL)
	}
	if personal.UserAccessTokenFile != filepath.Join(dir, "user.token") || personal.Secret() != "" {
		t.Errorf("personal: token file %q, secret set %v", personal.UserAccessTokenFile, personal.Secret() != "")
	}
}

func TestLoadInvalid(t *testing.T) {
	const creds = "    app_id: cli_a\n    app_secret: x\n"
	type loadCase struct {
		name  string
		files map[string]string // besides aily.yml
		yaml  string
		want  string // a substring of the error
	}
	cases := []loadCase{
		{
			name: "empty file",
			yaml: "",
			want: "the file is empty",
		},
		{
			name: "no apps",
			yaml: "apps: []\n",
			want: "no apps",
		},
		{
			name: "unknown top-level key names the key and line",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: [s]\nscrape_interval: 5s\n",
			want: `line 6: unknown key "scrape_interval" at the top level`,
		},
		{
			name: "unknown app key names the key and line",
			yaml: "apps:\n  - name: a\n" + creds + "    session: [s]\n",
			want: `line 5: unknown key "session" in an app`,
		},
		{
			name: "not YAML",
			yaml: "apps: [\n",
			want: "parse YAML",
		},
		{
			name: "apps given a mapping names the file, line, key and the shape expected",
			yaml: "apps:\n  name: a\n" + "  app_id: cli_a\n  sessions: [s]\n",
			want: `aily.yml: parse YAML: line 2: apps must be a list of apps, each item starting with "- " (such as "- name: …"), not a mapping`,
		},
		{
			name: "a list where a string belongs",
			yaml: "apps:\n  - name: [a, b]\n",
			want: "line 2: apps[0].name must be a string, not a list",
		},
		{
			name: "a string where a list belongs",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: session_1\n",
			want: `line 5: apps[0].sessions must be a list of strings, one "- " item a line or [a, b], not "session_1"`,
		},
		{
			name: "a word where true or false belongs, after an unknown key",
			yaml: "apps:\n  - name: a\n" + creds + "    sesions: [s]\n    per_session: maybe\n",
			want: `line 5: unknown key "sesions" in an app; line 6: apps[0].per_session must be true or false, not "maybe"`,
		},
		{
			name: "a list as the whole file",
			yaml: "- name: a\n",
			want: "line 1: the file must be a mapping of keys to values (apps), not a list",
		},
		{
			name: "missing name",
			yaml: "apps:\n  - app_id: cli_a\n    app_secret: x\n    sessions: [s]\n",
			want: "apps[0] (line 2): name is required",
		},
		{
			name: "bad name",
			yaml: "apps:\n  - name: help desk\n" + creds + "    sessions: [s]\n",
			want: `app "help desk" (line 2): name "help desk" may hold only letters, digits, '_' and '-'`,
		},
		{
			name: "duplicate name",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: [s]\n  - name: a\n" + creds + "    sessions: [t]\n",
			want: `app "a" (line 6): name is already used by apps[0]`,
		},
		{
			name: "no credentials",
			yaml: "apps:\n  - name: a\n    sessions: [s]\n",
			want: `app "a" (line 2): no credentials`,
		},
		{
			name:  "two kinds of credentials",
			files: map[string]string{"tok": "u-x"},
			yaml:  "apps:\n  - name: a\n" + creds + "    user_access_token_file: tok\n    sessions: [s]\n",
			want:  `app "a" (line 2): user_access_token_file cannot be combined with app_id/app_secret/app_secret_file`,
		},
		{
			name: "app_id without secret",
			yaml: "apps:\n  - name: a\n    app_id: cli_a\n    sessions: [s]\n",
			want: `app "a" (line 2): app_secret or app_secret_file is required with app_id`,
		},
		{
			name: "secret without app_id",
			yaml: "apps:\n  - name: a\n    app_secret: x\n    sessions: [s]\n",
			want: `app "a" (line 2): app_id is required`,
		},
		{
			name:  "secret and secret file",
			files: map[string]string{"sec": "x"},
			yaml:  "apps:\n  - name: a\n" + creds + "    app_secret_file: sec\n    sessions: [s]\n",
			want:  `app "a" (line 2): app_secret and app_secret_file cannot both be set`,
		},
		{
			name: "missing environment variable is named",
			yaml: "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: ${NOT_SET_ANYWHERE}\n    sessions: [s]\n",
			want: `app "a" (line 2): app_secret: environment variable NOT_SET_ANYWHERE is not set`,
		},
		{
			name: "empty secret after expansion",
			yaml: "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: ${EMPTY}\n    sessions: [s]\n",
			want: `app "a" (line 2): app_secret is empty`,
		},
		{
			name: "bad variable reference",
			yaml: "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: ${1X}\n    sessions: [s]\n",
			want: `app_secret: "${1X}" is not a valid environment variable reference`,
		},
		{
			name: "missing secret file",
			yaml: "apps:\n  - name: a\n    app_id: cli_a\n    app_secret_file: nope\n    sessions: [s]\n",
			want: `app "a" (line 2): app_secret_file: open`,
		},
		{
			name:  "empty secret file",
			files: map[string]string{"sec": "\n"},
			yaml:  "apps:\n  - name: a\n    app_id: cli_a\n    app_secret_file: sec\n    sessions: [s]\n",
			want:  `app "a" (line 2): app_secret_file `,
		},
		{
			name: "missing user token file",
			yaml: "apps:\n  - name: a\n    user_access_token_file: nope\n    sessions: [s]\n",
			want: `app "a" (line 2): user_access_token_file: stat`,
		},
		{
			name: "app_secret of spaces",
			yaml: "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: \"   \"\n    sessions: [s]\n",
			want: `app "a" (line 2): app_secret is empty`,
		},
		{
			name: "app_secret of spaces around an empty variable",
			yaml: "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: \" ${EMPTY}\t\"\n    sessions: [s]\n",
			want: `app "a" (line 2): app_secret is empty`,
		},
		{
			name:  "secret file of spaces",
			files: map[string]string{"sec": "  \t \r\n"},
			yaml:  "apps:\n  - name: a\n    app_id: cli_a\n    app_secret_file: sec\n    sessions: [s]\n",
			want:  `sec is empty`,
		},
		{
			name: "no sessions",
			yaml: "apps:\n  - name: a\n" + creds,
			want: `app "a" (line 2): no sessions: set sessions, sessions_file or sessions_url`,
		},
		{
			name:  "sessions file listing none",
			files: map[string]string{"s.txt": "# nothing yet\n\n"},
			yaml:  "apps:\n  - name: a\n" + creds + "    sessions_file: s.txt\n",
			want:  `app "a" (line 2): no sessions: sessions is empty and sessions_file`,
		},
		{
			name:  "sessions file with two IDs on a line",
			files: map[string]string{"s.txt": "s1\ns2 s3\n"},
			yaml:  "apps:\n  - name: a\n" + creds + "    sessions_file: s.txt\n",
			want:  `s.txt: line 2: session ID "s2 s3" contains a space`,
		},
		{
			name: "empty session ID",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: [s, \"\"]\n",
			want: `app "a" (line 2): sessions[1]: empty session ID`,
		},
		{
			name: "duplicate session ID",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: [s, t, s]\n",
			want: `app "a" (line 2): sessions[2]: session "s" is listed twice`,
		},
		{
			name: "null app",
			yaml: "apps:\n  - \n",
			want: "apps[0] (line 2): empty app",
		},
		{
			name: "sessions_url not http(s)",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: ftp://agent.example.com/sessions\n",
			want: `app "a" (line 2): sessions_url "ftp://agent.example.com/sessions" must be an absolute http(s) URL`,
		},
		{
			name: "sessions_url relative",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: /sessions\n",
			want: `sessions_url "/sessions" must be an absolute http(s) URL`,
		},
		{
			name: "sessions_url with a password does not print it and says where credentials go",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: https://u:hunter2@agent.example.com/sessions\n",
			want: `sessions_url "https://u:xxxxx@agent.example.com/sessions" must not hold user info: set sessions_http_config's basic_auth instead`,
		},
		{
			name: "sessions_refresh_interval without sessions_url",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: [s]\n    sessions_refresh_interval: 5m\n",
			want: `app "a" (line 2): sessions_refresh_interval is set without sessions_url`,
		},
		{
			name: "sessions_http_config without sessions_url",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: [s]\n    sessions_http_config: {follow_redirects: false}\n",
			want: `app "a" (line 2): sessions_http_config is set without sessions_url`,
		},
		{
			name: "sessions_refresh_interval too short",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: https://agent.example.com/s\n    sessions_refresh_interval: 100ms\n",
			want: `app "a" (line 2): sessions_refresh_interval 100ms must be at least 1s`,
		},
		{
			name: "sessions_refresh_interval without a unit",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: https://agent.example.com/s\n    sessions_refresh_interval: 60\n",
			want: `line 6: apps[0].sessions_refresh_interval must be a duration such as 30s or 5m, not "60"`,
		},
		{
			name: "unknown key in sessions_http_config names its line and path",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: https://agent.example.com/s\n    sessions_http_config:\n      tls_config:\n        ca_fil: ca.pem\n",
			want: `line 8: unknown key "ca_fil" in apps[0].sessions_http_config.tls_config`,
		},
		{
			name: "a list where sessions_http_config's proxy_url belongs",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: https://agent.example.com/s\n    sessions_http_config:\n      proxy_url: [a]\n",
			want: `line 7: apps[0].sessions_http_config.proxy_url must be a URL such as http://proxy.example.com:3128, not a list`,
		},
		{
			name: "two kinds of credentials in sessions_http_config",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions_url: https://agent.example.com/s\n    sessions_http_config:\n" +
				"      basic_auth: {username: u, password: hunter2}\n      bearer_token: hunter3\n",
			want: `app "a" (line 2): sessions_http_config: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured`,
		},
		{
			name: "tls_config checked while decoding still names the app and line",
			yaml: "apps:\n  - name: a\n" + creds + "    sessions: [s]\n  - name: b\n" + creds + "    sessions_url: https://agent.example.com/s\n" +
				"    sessions_http_config:\n      tls_config: {ca: x, ca_file: y}\n",
			want: `app "b" (line 6): sessions_http_config (line 10): at most one of ca, ca_file & ca_ref must be configured`,
		},
	}
	// base_url's rule is feishu.ParseBaseURL's: these check the words the
	// file's errors put around it, and that no password shows.
	for _, c := range []struct{ name, baseURL, want string }{
		{"relative base_url", "open.feishu.cn", `app "a" (line 2): base_url "open.feishu.cn" must be an absolute http(s) URL`},
		{"base_url of another scheme", "ftp://open.feishu.cn", `base_url "ftp://open.feishu.cn" must be an absolute http(s) URL`},
		{"base_url with a path names the expected form", "https://open.feishu.cn/open-apis", `base_url "https://open.feishu.cn/open-apis" must be a scheme and a host only, such as https://open.feishu.cn`},
		{"base_url with a path and a trailing slash", "https://open.feishu.cn/open-apis/", `base_url "https://open.feishu.cn/open-apis/" must be a scheme and a host only`},
		{"base_url with a password does not print it", "https://u:hunter2@open.feishu.cn", `base_url "https://u:xxxxx@open.feishu.cn" must be`},
		{"unparseable base_url with a password does not print it", "https://u:hunter2@open.feishu.cn:badport", `base_url "https://u:xxxxx@open.feishu.cn:badport" must be`},
		{"base_url with a password holding a bad escape does not print it", "https://u:hunter2%zz@open.feishu.cn", `base_url "https://u:xxxxx@open.feishu.cn" must be`},
		{"base_url with a password holding '/' and '@' does not print it", "https://u:hun/ter@2@open.feishu.cn", `base_url "https://u:xxxxx@open.feishu.cn" must be`},
		{"base_url without a scheme, with a password, does not print it", "u:hunter2@open.feishu.cn", `base_url "u:xxxxx@open.feishu.cn" must be`},
		{"base_url without a host", "\"https://\"", `base_url "https://" must be an absolute http(s) URL`},
		{"base_url of a port only", "\"https://:443\"", `base_url "https://:443" must be an absolute http(s) URL`},
	} {
		cases = append(cases, loadCase{name: c.name, yaml: "apps:\n  - name: a\n" + creds + "    base_url: " + c.baseURL + "\n    sessions: [s]\n", want: c.want})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"aily.yml": tc.yaml}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := writeFiles(t, files)
			_, err := load(filepath.Join(dir, "aily.yml"), env)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter") || strings.Contains(err.Error(), "ter@2") {
				t.Errorf("error %q shows a password", err)
			}
			// Users write YAML, not Go: no Go type, no YAML tag.
			if regexp.MustCompile(`(config|feishu)\.[A-Z]|\[\]\*|!!`).MatchString(err.Error()) {
				t.Errorf("error %q names a Go type or a YAML tag", err)
			}
		})
	}
}

func TestLoadSessionsURL(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"aily.yml": `apps:
  - name: only-url
    app_id: cli_a
    app_secret: x
    sessions_url: https://agent.example.com/aily/sessions?app=helpdesk
    sessions_http_config:
      bearer_token_file: agent.token
      tls_config:
        ca_file: ca.pem
  - name: all-three
    app_id: cli_b
    app_secret: x
    sessions: [s1, s2]
    sessions_file: b.sessions
    sessions_url: http://127.0.0.1:8080/sessions
    sessions_refresh_interval: 15s
`,
		"b.sessions": "s2\ns3\n",
	})
	cfg, err := load(filepath.Join(dir, "aily.yml"), env)
	if err != nil {
		t.Fatalf("an app with only sessions_url, and one with all three sources: %v", err)
	}
	onlyURL, all := cfg.Apps[0], cfg.Apps[1]
	if onlyURL.SessionsRefreshInterval != time.Minute || all.SessionsRefreshInterval != 15*time.Second {
		t.Errorf("refresh intervals %v and %v, want the default 1m and the 15s set", onlyURL.SessionsRefreshInterval, all.SessionsRefreshInterval)
	}
	hc := onlyURL.SessionsHTTPConfig.Prometheus()
	if hc.Authorization == nil || hc.Authorization.Type != "Bearer" || hc.Authorization.CredentialsFile != filepath.Join(dir, "agent.token") {
		t.Errorf("bearer_token_file = %+v, want it as Prometheus reads it: a Bearer authorization from the file, relative to the configuration's directory", hc.Authorization)
	}
	if hc.TLSConfig.CAFile != filepath.Join(dir, "ca.pem") || !hc.FollowRedirects || !hc.EnableHTTP2 {
		t.Errorf("tls_config.ca_file %q, follow_redirects %v, enable_http2 %v; want the path made absolute and Prometheus' defaults",
			hc.TLSConfig.CAFile, hc.FollowRedirects, hc.EnableHTTP2)
	}
	if all.SessionsHTTPConfig != nil || all.SessionsHTTPConfig.Prometheus().FollowRedirects != true {
		t.Errorf("an app without sessions_http_config gets %+v, want Prometheus' defaults", all.SessionsHTTPConfig.Prometheus())
	}
	if n := len(onlyURL.AllSessions()); n != 0 {
		t.Errorf("an app with only sessions_url has %d sessions before any fetch", n)
	}

	// The sessions fetched join the others, each once, in the order sessions,
	// sessions_file, sessions_url; a new list replaces the last.
	all.SetURLSessions([]string{"s3", "s4", "s1", "s5"})
	if diff := cmp.Diff([]string{"s1", "s2", "s3", "s4", "s5"}, all.AllSessions()); diff != "" {
		t.Errorf("sessions after a fetch (-want +got):\n%s", diff)
	}
	all.SetURLSessions([]string{"s5"})
	if diff := cmp.Diff([]string{"s1", "s2", "s3", "s5"}, all.AllSessions()); diff != "" {
		t.Errorf("sessions after the next fetch (-want +got):\n%s", diff)
	}
	onlyURL.SetURLSessions(nil)
	if n := len(onlyURL.AllSessions()); n != 0 {
		t.Errorf("an empty list fetched leaves %d sessions", n)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "aily.yml"))
	if err == nil || !strings.Contains(err.Error(), "aily.yml") {
		t.Fatalf("error %v, want one naming the file", err)
	}
}

func TestLoadUsesProcessEnvironment(t *testing.T) {
	t.Setenv("AILY_TEST_SECRET", "from-process-env")
	dir := writeFiles(t, map[string]string{"aily.yml": "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: ${AILY_TEST_SECRET}\n    sessions: [s]\n"})
	cfg, err := Load(filepath.Join(dir, "aily.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(cfg.Apps[0].Secret()); got != "from-process-env" {
		t.Errorf("secret = %q", got)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"sec": "file-secret-value",
		"aily.yml": `apps:
  - name: a
    app_id: cli_a
    app_secret: literal-secret-value
    sessions: [s]
  - name: b
    app_id: cli_b
    app_secret_file: sec
    sessions: [s]
    per_session: false
`,
	})
	cfg := mustLoad(t, dir)
	red, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`apps:
    - name: a
      app_id: cli_a
      app_secret: <secret>
      base_url: https://open.feishu.cn
      sessions:
        - s
      per_session: true
    - name: b
      app_id: cli_b
      app_secret_file: %s
      base_url: https://open.feishu.cn
      sessions:
        - s
      per_session: false
`, filepath.Join(dir, "sec"))
	if diff := cmp.Diff(want, string(red)); diff != "" {
		t.Errorf("Redacted() (-want +got):\n%s", diff)
	}
	for _, shown := range []string{
		string(red),
		fmt.Sprintf("%v %+v %#v", *cfg.Apps[0], *cfg.Apps[0], *cfg.Apps[0]),
		fmt.Sprintf("%v %+v %#v", *cfg.Apps[1], *cfg.Apps[1], *cfg.Apps[1]),
		fmt.Sprintf("%v %s %q %x", cfg.Apps[0].Secret(), cfg.Apps[1].Secret(), cfg.Apps[0].Secret(), cfg.Apps[1].Secret()),
	} {
		for _, secret := range []string{"literal-secret-value", "file-secret-value"} {
			if strings.Contains(shown, secret) {
				t.Errorf("%q shows the secret %q", shown, secret)
			}
		}
	}
}

// TestRedactedShowsEveryField sets every field of an App that the file can
// set, and expects each in /config's YAML, the secret as "<secret>": a field
// added to App later cannot be left out of /config.
func TestRedactedShowsEveryField(t *testing.T) {
	const secret = "the-secret-value"
	var app App
	v := reflect.ValueOf(&app).Elem()
	var keys []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "" || key == "-" {
			continue
		}
		keys = append(keys, key)
		switch fv := v.Field(i); {
		case f.Type == reflect.TypeFor[feishu.Secret]():
			fv.SetString(secret)
		case fv.Kind() == reflect.String:
			fv.SetString("value of " + key)
		case f.Type == reflect.TypeFor[[]string]():
			fv.Set(reflect.ValueOf([]string{"value of " + key}))
		case f.Type == reflect.TypeFor[*bool]():
			fv.Set(reflect.ValueOf(new(false)))
		case f.Type == reflect.TypeFor[*float64]():
			fv.Set(reflect.ValueOf(new(1234.0)))
		case f.Type == reflect.TypeFor[*int]():
			fv.Set(reflect.ValueOf(new(7)))
		case f.Type == reflect.TypeFor[time.Duration]():
			fv.Set(reflect.ValueOf(90 * time.Second))
		case f.Type == reflect.TypeFor[*HTTPClient]():
			fv.Set(reflect.ValueOf(&HTTPClient{BasicAuth: &promconfig.BasicAuth{Username: "u", Password: secret}}))
		default:
			t.Fatalf("field %s of type %s: teach this test to set it", f.Name, f.Type)
		}
	}
	red, err := (&Config{Apps: []*App{&app}}).Redacted()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Apps []map[string]any `yaml:"apps"`
	}
	if err := yaml.Unmarshal(red, &got); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(red), secret) || got.Apps[0]["app_secret"] != "<secret>" ||
		!strings.Contains(string(red), "password: <secret>") {
		t.Errorf("the secret is not redacted:\n%s", red)
	}
	for _, key := range keys {
		if _, ok := got.Apps[0][key]; !ok {
			t.Errorf("/config leaves out %s:\n%s", key, red)
		}
	}
}

// TestRedactedHidesSessionsHTTPSecrets sets every secret sessions_http_config
// can hold and expects none in /config's YAML, even with prometheus/common's
// switch that makes its Secret marshal as the value.
func TestRedactedHidesSessionsHTTPSecrets(t *testing.T) {
	dir := writeFiles(t, map[string]string{"aily.yml": `apps:
  - name: a
    app_id: cli_a
    app_secret: x
    sessions_url: https://agent.example.com/sessions
    sessions_http_config:
      oauth2:
        client_id: id
        client_secret: oauth-client-secret
        token_url: https://auth.example.com/token
        proxy_url: http://u:oauth-proxy-password@proxy.example.com:3128
      tls_config:
        cert: CERT
        key: tls-private-key
      proxy_url: http://u:proxy-password@proxy.example.com:3128
      proxy_connect_header:
        Proxy-Authorization: [proxy-header-secret]
      http_headers:
        X-Agent-Key:
          secrets: [header-secret]
  - name: b
    app_id: cli_b
    app_secret: x
    sessions_url: https://agent.example.com/sessions
    sessions_http_config:
      basic_auth: {username: u, password: basic-auth-password}
  - name: c
    app_id: cli_c
    app_secret: x
    sessions_url: https://agent.example.com/sessions
    sessions_http_config:
      bearer_token: bearer-token-value
`})
	cfg := mustLoad(t, dir)
	defer func(v bool) { promconfig.MarshalSecretValue = v }(promconfig.MarshalSecretValue)
	promconfig.MarshalSecretValue = true
	red, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"oauth-client-secret", "oauth-proxy-password", "tls-private-key", "proxy-password",
		"proxy-header-secret", "header-secret", "basic-auth-password", "bearer-token-value"} {
		if strings.Contains(string(red), secret) {
			t.Errorf("/config shows %q:\n%s", secret, red)
		}
	}
	for _, shown := range []string{"client_id: id", "cert: CERT", "username: u", "http://u:xxxxx@proxy.example.com:3128", "sessions_url: https://agent.example.com/sessions"} {
		if !strings.Contains(string(red), shown) {
			t.Errorf("/config does not show %q:\n%s", shown, red)
		}
	}
	if n := strings.Count(string(red), "<secret>"); n != 9 {
		t.Errorf("%d secrets redacted, want 9 (three app secrets, six of sessions_http_config):\n%s", n, red)
	}
	// Redacting copies: the running configuration keeps its secrets.
	if got := cfg.Apps[1].SessionsHTTPConfig.BasicAuth.Password; got != "basic-auth-password" {
		t.Errorf("redacting changed the running configuration's password to %q", got)
	}
	if got := cfg.Apps[0].SessionsHTTPConfig.ProxyURL.String(); !strings.Contains(got, "proxy-password") {
		t.Errorf("redacting changed the running configuration's proxy_url to %q", got)
	}
	// fmt shows an address, not the secrets.
	for _, app := range cfg.Apps {
		if s := fmt.Sprintf("%v %+v %#v", *app, *app, *app); strings.Contains(s, "password") || strings.Contains(s, "secret-value") {
			t.Errorf("fmt shows the app's sessions_http_config: %s", s)
		}
	}
}

func TestRefreshSessions(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"s.txt":    "s1\ns2\n",
		"aily.yml": "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions: [s0, s1]\n    sessions_file: s.txt\n",
	})
	cfg := mustLoad(t, dir)
	app := cfg.Apps[0]
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "s.txt"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name        string
		content     string // "" with remove: the file is deleted
		remove      bool
		wantChanged bool
		wantErr     string
		want        []string
	}{
		{name: "unchanged file is not parsed again", content: "s1\ns2\n", want: []string{"s0", "s1", "s2"}},
		{name: "an added line is picked up", content: "s1\ns2\ns3\n", wantChanged: true, want: []string{"s0", "s1", "s2", "s3"}},
		{name: "a removed line goes away", content: "s3\n", wantChanged: true, want: []string{"s0", "s1", "s3"}},
		{name: "a bad file keeps the last good list", content: "s3 s4\n", wantErr: "line 1", want: []string{"s0", "s1", "s3"}},
		{name: "a missing file keeps the last good list", remove: true, wantErr: "no such file", want: []string{"s0", "s1", "s3"}},
		{name: "an empty file leaves the listed sessions", content: "", wantChanged: true, want: []string{"s0", "s1"}},
	}
	for _, st := range steps {
		if st.remove {
			if err := os.Remove(filepath.Join(dir, "s.txt")); err != nil {
				t.Fatal(err)
			}
		} else {
			write(st.content)
		}
		changed, err := app.RefreshSessions()
		if st.wantErr == "" && err != nil || st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)) {
			t.Errorf("%s: error %v, want %q", st.name, err, st.wantErr)
		}
		if changed != st.wantChanged {
			t.Errorf("%s: changed = %v, want %v", st.name, changed, st.wantChanged)
		}
		if diff := cmp.Diff(st.want, app.AllSessions(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: sessions (-want +got):\n%s", st.name, diff)
		}
	}
}

func TestParseSessions(t *testing.T) {
	got, err := ParseSessions([]byte("\n# a comment\r\nsession_a\r\n  session_b # why\n\nsession_a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"session_a", "session_b"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLoadMissingSessionsFileIsAWarning(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"aily.yml": `apps:
  - name: a
    app_id: cli_a
    app_secret: x
    sessions: [s0]
    sessions_file: a.sessions
  - name: only-file
    app_id: cli_b
    app_secret: x
    sessions_file: b.sessions
`,
	})
	cfg, err := load(filepath.Join(dir, "aily.yml"), env)
	if err != nil {
		t.Fatalf("a missing sessions_file is an error: %v", err)
	}
	a, onlyFile := cfg.Apps[0], cfg.Apps[1]
	if diff := cmp.Diff([]string{"s0"}, a.AllSessions()); diff != "" {
		t.Errorf("sessions of a (-want +got):\n%s", diff)
	}
	if got := onlyFile.AllSessions(); len(got) != 0 {
		t.Errorf("an app whose only sessions_file is missing watches %v, want none", got)
	}
	want := []string{
		fmt.Sprintf(`app "a" (line 2): sessions_file %s does not exist: it adds no sessions until it appears`, filepath.Join(dir, "a.sessions")),
		fmt.Sprintf(`app "only-file" (line 7): sessions_file %s does not exist: it adds no sessions until it appears`, filepath.Join(dir, "b.sessions")),
	}
	if diff := cmp.Diff(want, cfg.Warnings()); diff != "" {
		t.Errorf("Warnings() (-want +got):\n%s", diff)
	}

	// The file appearing later is picked up by the next refresh.
	if err := os.WriteFile(filepath.Join(dir, "b.sessions"), []byte("s1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := onlyFile.RefreshSessions()
	if err != nil || !changed {
		t.Fatalf("RefreshSessions() = %v, %v; want true, nil", changed, err)
	}
	if diff := cmp.Diff([]string{"s1"}, onlyFile.AllSessions()); diff != "" {
		t.Errorf("sessions after the file appeared (-want +got):\n%s", diff)
	}
}

func TestLoadWithoutWarnings(t *testing.T) {
	dir := writeFiles(t, map[string]string{"aily.yml": "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions: [s]\n"})
	cfg := mustLoad(t, dir)
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("Warnings() = %q, want none", w)
	}
}

func TestBareDollarInAppSecretWarns(t *testing.T) {
	for _, tc := range []struct {
		secret string // as written in YAML
		want   []string
	}{
		{`$HELPDESK_SECRET`, []string{`app "a" (line 2): app_secret "$HELPDESK_SECRET" is taken literally: write ${HELPDESK_SECRET} for the environment variable`}},
		{`"pre-$HELPDESK_SECRET"`, []string{`app "a" (line 2): app_secret holds a '$' followed by a name outside ${…}; it is taken literally: write ${NAME} for an environment variable`}},
		{`"${HELPDESK_SECRET}"`, nil},
		{`"abc$"`, nil},
		{`"a$1b"`, nil},
		{`plain`, nil},
	} {
		dir := writeFiles(t, map[string]string{"aily.yml": "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: " + tc.secret + "\n    sessions: [s]\n"})
		cfg, err := load(filepath.Join(dir, "aily.yml"), env)
		if err != nil {
			t.Errorf("app_secret: %s: %v", tc.secret, err)
			continue
		}
		if diff := cmp.Diff(tc.want, cfg.Warnings(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("app_secret: %s: warnings (-want +got):\n%s", tc.secret, diff)
		}
		if strings.Contains(strings.Join(cfg.Warnings(), " "), "pre-") {
			t.Errorf("a warning shows part of the secret: %q", cfg.Warnings())
		}
	}
}

func TestFileReadsAreCapped(t *testing.T) {
	const creds = "    app_id: cli_a\n    app_secret: x\n"
	// big writes a sparse file of size bytes: cheap to create, and as slow
	// as a real one to read whole.
	big := func(t *testing.T, dir, name string, size int64) string {
		t.Helper()
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		yaml func(t *testing.T, dir string) string
		want func(dir string) string
	}{
		{
			name: "sessions_file over 16 MiB",
			yaml: func(t *testing.T, dir string) string {
				big(t, dir, "s.txt", 16<<20+1)
				return "apps:\n  - name: a\n" + creds + "    sessions_file: s.txt\n"
			},
			want: func(dir string) string {
				return fmt.Sprintf(`app "a" (line 2): sessions_file: %s is larger than 16 MiB`, filepath.Join(dir, "s.txt"))
			},
		},
		{
			name: "app_secret_file over 64 KiB",
			yaml: func(t *testing.T, dir string) string {
				big(t, dir, "sec", 64<<10+1)
				return "apps:\n  - name: a\n    app_id: cli_a\n    app_secret_file: sec\n    sessions: [s]\n"
			},
			want: func(dir string) string {
				return fmt.Sprintf(`app "a" (line 2): app_secret_file: %s is larger than 64 KiB`, filepath.Join(dir, "sec"))
			},
		},
		{
			name: "sessions_file /dev/zero",
			yaml: func(t *testing.T, dir string) string {
				return "apps:\n  - name: a\n" + creds + "    sessions_file: /dev/zero\n"
			},
			want: func(string) string { return `sessions_file: /dev/zero is larger than 16 MiB` },
		},
		{
			name: "app_secret_file /dev/zero",
			yaml: func(t *testing.T, dir string) string {
				return "apps:\n  - name: a\n    app_id: cli_a\n    app_secret_file: /dev/zero\n    sessions: [s]\n"
			},
			want: func(string) string { return `app_secret_file: /dev/zero is larger than 64 KiB` },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.name, "/dev/zero") {
				if _, err := os.Stat("/dev/zero"); err != nil {
					t.Skip("no /dev/zero")
				}
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "aily.yml"), []byte(tc.yaml(t, dir)), 0o600); err != nil {
				t.Fatal(err)
			}
			// Read whole, /dev/zero would never end: bound the test.
			done := make(chan error, 1)
			go func() {
				_, err := load(filepath.Join(dir, "aily.yml"), env)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want(dir)) {
					t.Errorf("error %v\nwant one containing %q", err, tc.want(dir))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("load did not return within 5s: the file is read whole")
			}
		})
	}
}

func TestConfigFileReadIsCapped(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	done := make(chan error, 1)
	go func() {
		_, err := load("/dev/zero", env)
		done <- err
	}()
	select {
	case err := <-done:
		if want := "/dev/zero is larger than 16 MiB"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one containing %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("load did not return within 5s: the file is read whole")
	}
}

func TestRefreshSessionsOfAFileGrownTooLarge(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"s.txt":    "s1\n",
		"aily.yml": "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions_file: s.txt\n",
	})
	cfg := mustLoad(t, dir)
	if err := os.Truncate(filepath.Join(dir, "s.txt"), 16<<20+1); err != nil {
		t.Fatal(err)
	}
	changed, err := cfg.Apps[0].RefreshSessions()
	if err == nil || changed || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("RefreshSessions() = %v, %v; want false and the cap", changed, err)
	}
	if diff := cmp.Diff([]string{"s1"}, cfg.Apps[0].AllSessions()); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
}

func TestDailyBudgetOverridesTheFlagAndMustNotBeNegative(t *testing.T) {
	cfg, err := parse([]byte("apps:\n  - name: a\n    app_id: cli_a\n    app_secret: s\n    sessions: [s1]\n    daily_budget: 5000\n  - name: b\n    app_id: cli_b\n    app_secret: s\n    sessions: [s1]\n"), t.TempDir(), env)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Apps[0].RequestBudget(100000); got != 5000 {
		t.Errorf("app a: budget %v, want its daily_budget, 5000", got)
	}
	if got := cfg.Apps[1].RequestBudget(100000); got != 100000 {
		t.Errorf("app b: budget %v, want the flag's, 100000", got)
	}
	_, err = parse([]byte("apps:\n  - name: a\n    app_id: cli_a\n    app_secret: s\n    sessions: [s1]\n    daily_budget: -1\n"), t.TempDir(), env)
	if err == nil || !strings.Contains(err.Error(), "daily_budget -1") {
		t.Errorf("a negative daily_budget: error %v, want one naming daily_budget -1", err)
	}
}

// loadBigApp loads the app "big" whose n sessions come from its
// sessions_file, with the lines of extra (app keys) after.
func loadBigApp(t *testing.T, n int, extra ...string) *Config {
	t.Helper()
	yml := "apps:\n  - name: big\n    app_id: cli_a\n    app_secret: x\n    sessions_file: big.sessions\n"
	for _, l := range extra {
		yml += "    " + l + "\n"
	}
	var ids strings.Builder
	for i := range n {
		fmt.Fprintf(&ids, "session_%06d\n", i)
	}
	dir := writeFiles(t, map[string]string{"aily.yml": yml, "big.sessions": ids.String()})
	cfg := mustLoad(t, dir)
	return cfg
}

func TestManySessionsWithPerSessionWarn(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sessions   int
		perSession string // the per_session line, if any
		inline     string // sessions written in the file itself
		warn       bool
		summed     bool // warned that the run metrics are summed by default
	}{
		{name: "10,000 sessions, per_session by default", sessions: ManySessions},
		{name: "10,001 sessions, per_session by default", sessions: ManySessions + 1, summed: true},
		{name: "10,001 sessions, per_session: true", sessions: ManySessions + 1, perSession: "per_session: true", warn: true},
		{name: "10,001 sessions, per_session: false", sessions: ManySessions + 1, perSession: "per_session: false"},
		{name: "10,000 in the file and one more inline", sessions: ManySessions, inline: "sessions: [session_inline]", summed: true},
		{name: "10,000 in the file, one of them again inline", sessions: ManySessions, inline: "sessions: [session_000000]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadBigApp(t, tc.sessions, tc.perSession, tc.inline)
			var want []string
			if tc.warn {
				want = []string{`app "big" (line 2): 10001 sessions with per_session: true: every scrape serves some 25 series for each session, ` +
					`and answering that many takes time out of the scrape's deadline, leaving less or none for polling; ` +
					`above 10000 sessions, set per_session: false, or shard: split the sessions over several exporters`}
			}
			if tc.summed {
				want = []string{`app "big" (line 2): 10001 sessions: the run metrics are summed per app (per_session is not set, ` +
					`and above 10000 sessions it means false); set per_session: false to say so, or shard the sessions over ` +
					`several exporters to keep series per session`}
			}
			if diff := cmp.Diff(want, cfg.Warnings(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Warnings() (-want +got):\n%s", diff)
			}
			perSession := tc.perSession == "per_session: true" || (tc.perSession == "" && len(cfg.Apps[0].AllSessions()) <= ManySessions)
			if got := cfg.Apps[0].SeriesPerSession(); got != perSession {
				t.Errorf("SeriesPerSession() = %v, want %v", got, perSession)
			}
		})
	}
}

// TestSharedSessionsSizeIsAShardsShare: with sessions shared out over
// shards, per_session's default and its warning go by a shard's share, the
// same on every shard.
func TestSharedSessionsSizeIsAShardsShare(t *testing.T) {
	for _, tc := range []struct {
		sessions, shares int
		perSession       bool
		warning          string
	}{
		{sessions: 3*ManySessions - 5, shares: 3, perSession: true},
		{sessions: 3*ManySessions + 1, shares: 3, warning: "10001 sessions a shard (30001 over 3 shards): the run metrics are summed per app"},
		{sessions: ManySessions + 1, shares: 1, warning: "10001 sessions: the run metrics are summed per app"},
	} {
		cfg := loadBigApp(t, tc.sessions)
		cfg.ShareSessions(tc.shares)
		if got := cfg.Apps[0].SeriesPerSession(); got != tc.perSession {
			t.Errorf("%d sessions over %d shards: SeriesPerSession() = %v, want %v", tc.sessions, tc.shares, got, tc.perSession)
		}
		w := cfg.Warnings()
		switch {
		case tc.warning == "" && len(w) != 0:
			t.Errorf("%d sessions over %d shards: warnings %q, want none", tc.sessions, tc.shares, w)
		case tc.warning != "" && (len(w) != 1 || !strings.Contains(w[0], tc.warning) || !strings.HasPrefix(w[0], `app "big" (line 2): `)):
			t.Errorf("%d sessions over %d shards: warnings %q, want one saying %q", tc.sessions, tc.shares, w, tc.warning)
		}
	}
}

func TestLoadMetadataLabels(t *testing.T) {
	const app = "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions: [s]\n"
	dir := writeFiles(t, map[string]string{"aily.yml": app + "    metadata_labels: [skill, channel]\n    metadata_label_limit: 20\n"})
	cfg, err := Load(filepath.Join(dir, "aily.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Apps[0]; !slices.Equal(a.MetadataLabels, []string{"skill", "channel"}) || a.LabelLimit() != 20 {
		t.Errorf("metadata labels %q, limit %d; want [skill channel], 20", a.MetadataLabels, a.LabelLimit())
	}
	dir = writeFiles(t, map[string]string{"aily.yml": app + "    metadata_labels: [skill]\n"})
	if cfg, err := Load(filepath.Join(dir, "aily.yml")); err != nil || cfg.Apps[0].LabelLimit() != DefaultMetadataLabelLimit {
		t.Errorf("limit left out: %v; want %d", err, DefaultMetadataLabelLimit)
	}

	for _, tc := range []struct{ name, yaml, want string }{
		{"not a label name", "    metadata_labels: [skill, skill-name]\n",
			`aily.yml: app "a" (line 2): metadata_labels[1]: "skill-name" is not a label name`},
		{"starting with a digit", "    metadata_labels: [1skill]\n", `metadata_labels[0]: "1skill" is not a label name`},
		{"reserved to Prometheus", "    metadata_labels: [__skill]\n", `metadata_labels[0]: "__skill": label names starting with "__" are reserved`},
		{"app", "    metadata_labels: [app]\n", `metadata_labels[0]: "app" is a label the exporter or Prometheus sets already`},
		{"session_id", "    metadata_labels: [skill, session_id]\n", `metadata_labels[1]: "session_id" is a label`},
		{"status", "    metadata_labels: [status]\n", `"status" is a label`},
		{"code", "    metadata_labels: [code]\n", `"code" is a label`},
		{"error_code", "    metadata_labels: [error_code]\n", `"error_code" is a label`},
		{"le", "    metadata_labels: [le]\n", `"le" is a label`},
		{"shard", "    metadata_labels: [shard]\n", `"shard" is a label`},
		{"job", "    metadata_labels: [job]\n", `"job" is a label`},
		{"twice", "    metadata_labels: [skill, channel, skill]\n", `metadata_labels[2]: "skill" is listed twice (also metadata_labels[0])`},
		{"a limit without labels", "    metadata_label_limit: 5\n", `metadata_label_limit is set without metadata_labels`},
		{"a limit of 0", "    metadata_labels: [skill]\n    metadata_label_limit: 0\n", `metadata_label_limit 0 must be from 1 to 10000`},
		{"a limit too high", "    metadata_labels: [skill]\n    metadata_label_limit: 10001\n", `metadata_label_limit 10001 must be from 1`},
		{"not a list", "    metadata_labels: skill\n", `line 6: apps[0].metadata_labels must be a list of strings`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"aily.yml": app + tc.yaml})
			_, err := Load(filepath.Join(dir, "aily.yml"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
