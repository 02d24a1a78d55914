package feishu_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/google/go-cmp/cmp"
)

func TestRequestCutByTheCallersContextIsObservedAsCanceled(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, c *feishu.Client) error
		ep   feishu.Endpoint
	}{
		{"list page, deadline", func(ctx context.Context, c *feishu.Client) error {
			_, err := c.ListRunsPage(ctx, testSession, "")
			return err
		}, feishu.EndpointListRuns},
		{"get run, deadline", func(ctx context.Context, c *feishu.Client) error {
			_, err := c.GetRun(ctx, testSession, "run_x")
			return err
		}, feishu.EndpointGetRun},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.fake.PutRun(makeRun(testSession, "run_x", epoch, feishu.StatusCompleted))
			e.fake.SetFault(feishufake.Scope{Endpoint: tc.ep}, feishufake.Fault{Kind: feishufake.Slow, Delay: time.Minute})
			c := e.client(t, func(c *feishu.Config) { c.Sleep = nil })
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := tc.call(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want context.DeadlineExceeded", err)
			}
			if diff := cmp.Diff([]string{"tenant_token 0", string(tc.ep) + " canceled"}, e.obs.Requests()); diff != "" {
				t.Errorf("requests observed (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("list page, cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The server cancels the caller's context once the request reached
		// it, then answers only when the client has gone.
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == feishufake.TokenPath {
				_, _ = w.Write([]byte(`{"code":0,"msg":"ok","tenant_access_token":"t-static0123456789","expire":7200}`))
				return
			}
			cancel()
			<-r.Context().Done()
		})
		obs := &observer{}
		c := newClientOf(t, h, func(c *feishu.Config) { c.Observer = obs })
		_, err := c.ListRunsPage(ctx, testSession, "")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if diff := cmp.Diff([]string{"tenant_token 0", "list_runs canceled"}, obs.Requests()); diff != "" {
			t.Errorf("requests observed (-want +got):\n%s", diff)
		}
	})
}
