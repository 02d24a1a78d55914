package feishu_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// These tests pin down slips that the other tests let through: each was
// found by applying it to the code by hand and seeing every test pass.

func TestListingEndsAtHasMoreFalseEvenWithAPageToken(t *testing.T) {
	// A page may carry a page token and still say it is the last one; the
	// token means nothing then.
	first := jsonOK(page(false, "dG9rZW4tb2YtcGFnZS0y", `{"id":"run_1","status":"COMPLETED"}`))
	second := jsonOK(page(false, "", `{"id":"run_2","status":"COMPLETED"}`))

	t.Run("ListRuns", func(t *testing.T) {
		c, h := newStaticServer(t, nil, nil, first, second)
		runs, err := c.ListRuns(context.Background(), testSession)
		if err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
		if diff := cmp.Diff([]string{"run_1"}, runIDs(runs)); diff != "" {
			t.Errorf("runs (-want +got):\n%s", diff)
		}
		if n := h.Served(); n != 1 {
			t.Errorf("list requests = %d, want 1", n)
		}
	})
	t.Run("ListRunsPage", func(t *testing.T) {
		c, _ := newStaticServer(t, nil, nil, first, second)
		p, err := c.ListRunsPage(context.Background(), testSession, "")
		if err != nil {
			t.Fatalf("ListRunsPage: %v", err)
		}
		if p.HasMore || p.NextPageToken != "" {
			t.Errorf("HasMore %v, NextPageToken %q; want false and none", p.HasMore, p.NextPageToken)
		}
	})
}

func TestPageSizeOf20IsNotAskedAgainOn2700001(t *testing.T) {
	// 20 is the fallback itself: a 2700001 answer to it (an unknown session
	// here) is final, not a reason to ask again with 20.
	e := newTestEnv(t, feishufake.Options{})
	c := e.client(t, func(c *feishu.Config) { c.PageSize = 20 })
	_, err := c.ListRuns(context.Background(), "session_unknown")
	if !hasCode(err, feishu.CodeParamInvalid) {
		t.Fatalf("err = %v, want code 2700001", err)
	}
	if diff := cmp.Diff([]string{"20"}, e.PageSizes()); diff != "" {
		t.Errorf("page sizes asked (-want +got):\n%s", diff)
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
	if n := e.fake.Requests("tenant_token"); n != 1 {
		t.Errorf("token requests within half the lifetime = %d, want 1", n)
	}
	e.clock.Advance(time.Minute)
	list()
	if n := e.fake.Requests("tenant_token"); n != 2 {
		t.Errorf("token requests past half the lifetime = %d, want 2", n)
	}
}
