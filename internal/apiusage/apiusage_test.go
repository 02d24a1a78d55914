package apiusage

import (
	"errors"
	"testing"

	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

func TestRequestsOfTheLastMinuteOnly(t *testing.T) {
	b := New()
	b.SetApps([]string{"a"})
	for _, sec := range []float64{0, 0.5, 30, 59, 59.9} {
		b.Request("a", testkit.At(sec))
	}
	for _, tc := range []struct {
		at   float64
		want int
	}{
		{59.9, 5},
		{60, 3},  // the two of second 0 are a minute old
		{90, 2},  // and the one of second 30 too
		{118, 2}, // the two of second 59 are still within the minute
		{119, 0},
	} {
		if got := b.Usage("a", testkit.At(tc.at)).RequestsLastMinute; got != tc.want {
			t.Errorf("requests in the minute to %vs = %d, want %d", tc.at, got, tc.want)
		}
	}
	// A second a minute later reuses the slot of its predecessor.
	b.Request("a", testkit.At(120))
	if got := b.Usage("a", testkit.At(120)).RequestsLastMinute; got != 1 {
		t.Errorf("requests after the slot of second 0 was reused = %d, want 1", got)
	}
}

func TestSetAppsKeepsStaysStartsNewAndForgetsGone(t *testing.T) {
	b := New()
	now := testkit.T0
	b.SetApps([]string{"stays", "goes"})
	for _, app := range []string{"stays", "goes"} {
		b.Request(app, now)
		b.RateLimited(app)
	}
	b.SetApps([]string{"stays", "new"})
	if u := b.Usage("stays", now); u.RequestsLastMinute != 1 || u.RateLimited != 1 {
		t.Errorf("an app that stays lost its usage: %+v", u)
	}
	if u := b.Usage("new", now); u != (Usage{}) {
		t.Errorf("a new app starts with %+v, want nothing", u)
	}
	b.Request("goes", now)
	b.RateLimited("goes")
	b.TokenRenewal("goes", nil, now)
	if u := b.Usage("goes", now); u != (Usage{}) {
		t.Errorf("an app no longer configured shows %+v, want nothing (its late requests ignored)", u)
	}
}

func TestTokenStates(t *testing.T) {
	b := New()
	b.SetApps([]string{"a"})
	if got := b.Usage("a", testkit.T0).Token(); got != TokenNotFetched {
		t.Errorf("before any attempt: %q, want %q", got, TokenNotFetched)
	}
	b.TokenRenewal("a", errors.New("code 10003: invalid param"), testkit.At(1))
	u := b.Usage("a", testkit.At(1))
	if u.Token() != TokenFailed || u.TokenError != "code 10003: invalid param" || !u.TokenErrorAt.Equal(testkit.At(1)) {
		t.Errorf("after a failed attempt: %+v (%q), want failed with its error and time", u, u.Token())
	}
	b.TokenRenewal("a", nil, testkit.At(2))
	u = b.Usage("a", testkit.At(2))
	if u.Token() != TokenOK || u.TokenError != "" || !u.TokenErrorAt.IsZero() || !u.TokenRenewedAt.Equal(testkit.At(2)) {
		t.Errorf("after an attempt that worked: %+v (%q), want ok, the error cleared", u, u.Token())
	}
	b.TokenRenewal("a", errors.New("timeout"), testkit.At(3))
	if u := b.Usage("a", testkit.At(3)); u.Token() != TokenFailed || !u.TokenRenewedAt.Equal(testkit.At(2)) {
		t.Errorf("a failure after a renewal: %+v, want failed, the last renewal kept", u)
	}
}
