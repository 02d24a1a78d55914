package feishu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

func TestNewClientValidatesTheConfig(t *testing.T) {
	ok := feishu.Config{AppID: testAppID, AppSecret: testAppSecret}
	for _, tc := range []struct {
		name string
		edit func(*feishu.Config)
		want string // "" for success
	}{
		{"defaults", func(*feishu.Config) {}, ""},
		{"user token file", func(c *feishu.Config) { c.AppID, c.AppSecret, c.UserAccessTokenFile = "", "", "/run/token" }, ""},
		{"Lark base URL with a trailing slash", func(c *feishu.Config) { c.BaseURL = "https://open.larksuite.com/" }, ""},
		{"no credentials", func(c *feishu.Config) { c.AppID, c.AppSecret = "", "" }, "no credentials"},
		{"both credentials", func(c *feishu.Config) { c.UserAccessTokenFile = "/run/token" }, "not both"},
		{"secret without app ID", func(c *feishu.Config) { c.AppID = "" }, "app_id is empty"},
		{"app ID without secret", func(c *feishu.Config) { c.AppSecret = "" }, "empty app_secret"},
		{"base URL without scheme", func(c *feishu.Config) { c.BaseURL = "open.feishu.cn" }, "must be an absolute http(s) URL"},
		{"base URL unparsable", func(c *feishu.Config) { c.BaseURL = "http://[::1" }, "base URL"},
		{"base URL with a query", func(c *feishu.Config) { c.BaseURL = "https://open.feishu.cn/?x=1" }, "without user info, query or fragment"},
		{"base URL with a path", func(c *feishu.Config) { c.BaseURL = "https://open.feishu.cn/open-apis" }, "must be a scheme and a host only"},
		{"base URL with a password", func(c *feishu.Config) { c.BaseURL = "https://u:hunter2@open.feishu.cn" }, `"https://u:xxxxx@open.feishu.cn"`},
		{"negative page size", func(c *feishu.Config) { c.PageSize = -1 }, "page size -1"},
		{"negative max pages", func(c *feishu.Config) { c.MaxPages = -1 }, "max pages -1"},
		{"negative attempts", func(c *feishu.Config) { c.MaxAttempts = -1 }, "max attempts -1"},
		{"negative timeout", func(c *feishu.Config) { c.Timeout = -time.Second }, "timeout -1s"},
		{"negative rate limit", func(c *feishu.Config) { c.RateLimit = -1 }, "rate limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			_, err := feishu.NewClient(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("NewClient: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), testAppSecret):
				t.Errorf("err %q contains the secret", err)
			}
		})
	}
}

func TestClientWorksWithEveryDefault(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 1)
	c := e.client(t, func(c *feishu.Config) { c.HTTPClient, c.Observer, c.Now, c.Sleep, c.Rand = nil, nil, nil, nil, nil })
	if _, err := c.ListRuns(context.Background(), testSession); err != nil {
		t.Fatal(err)
	}
}

func TestParseBaseURLNormalises(t *testing.T) {
	for raw, want := range map[string]string{
		"":                            feishu.DefaultBaseURL,
		"https://open.larksuite.com/": "https://open.larksuite.com",
		"http://127.0.0.1:8080":       "http://127.0.0.1:8080",
	} {
		if got, err := feishu.ParseBaseURL(raw); err != nil || got != want {
			t.Errorf("ParseBaseURL(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}
