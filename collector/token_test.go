package collector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/apiusage"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

func TestAppTokenUpFollowsTheLastTokenAttempt(t *testing.T) {
	clk := feishufake.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{
		{Name: "a", API: newMemLister(), PerSession: true, Sessions: []string{"s1"}},
		{Name: "b", API: newMemLister(), PerSession: true, Sessions: []string{"s2"}},
	})
	tokenUp := func(app string) (float64, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return value(gather(t, ctx, c), "aily_app_token_up", map[string]string{"app": app})
	}
	for _, step := range []struct {
		name    string
		observe func()
		want    float64
		present bool
	}{
		{"before any attempt", func() {}, 0, false},
		{"after a renewal that worked", func() { c.APIObserver("a").ObserveTokenRenewal(nil) }, 1, true},
		{"after one that failed", func() { c.APIObserver("a").ObserveTokenRenewal(errors.New("code 10003")) }, 0, true},
		{"after one that worked again", func() { c.APIObserver("a").ObserveTokenRenewal(nil) }, 1, true},
	} {
		step.observe()
		if got, ok := tokenUp("a"); ok != step.present || got != step.want {
			t.Errorf("%s: aily_app_token_up %v (present %v), want %v (present %v)", step.name, got, ok, step.want, step.present)
		}
		if _, ok := tokenUp("b"); ok {
			t.Errorf("%s: aily_app_token_up of an app that made no attempt is present", step.name)
		}
		if tok := c.opts.Usage.Usage("a", clk.Now()).Token(); (tok == apiusage.TokenOK) != (step.present && step.want == 1) || (tok == apiusage.TokenNotFetched) == step.present {
			t.Errorf("%s: the status page's token state %v disagrees with the metric", step.name, tok)
		}
	}
}
