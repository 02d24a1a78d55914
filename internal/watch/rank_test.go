package watch

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

func TestRankWaitsTheMinIntervalAndAFailingSessionsBackOff(t *testing.T) {
	o := &Options{MinInterval: 5 * time.Second, IdleInterval: 5 * time.Minute, IdleAfter: 10 * time.Minute}
	s := &Session{baselined: true, lastPoll: t0}
	if _, _, ok := s.rank(o, t0.Add(5*time.Second-time.Millisecond), o.MinInterval); ok {
		t.Error("a session polled just under --poll.min-interval ago may be polled")
	}
	if _, _, ok := s.rank(o, t0.Add(5*time.Second), o.MinInterval); !ok {
		t.Error("a session polled --poll.min-interval ago may not be polled")
	}
	// Three failures in a row: 5 s, 10 s, 20 s.
	s.failures = 3
	if _, _, ok := s.rank(o, t0.Add(19*time.Second), o.MinInterval); ok {
		t.Error("a session failing three times in a row may be polled after 19 s, before its 20 s back-off")
	}
	if _, _, ok := s.rank(o, t0.Add(20*time.Second), o.MinInterval); !ok {
		t.Error("a session failing three times in a row may not be polled after its 20 s back-off")
	}
}

// TestRankDoesNotBackOffASessionWhoseCredentialFails: the app's token backs
// off (feishu); its sessions are polled every --poll.min-interval, each poll
// failing at once without a request until a renewal works, so that the
// first poll after it is not held back.
func TestRankDoesNotBackOffASessionWhoseCredentialFails(t *testing.T) {
	o := &Options{MinInterval: 5 * time.Second, IdleInterval: 5 * time.Minute, IdleAfter: 10 * time.Minute}
	s := &Session{baselined: true, lastPoll: t0, failures: 6,
		err: fmt.Errorf("list runs of session s: %w", &feishu.CredentialError{Credential: "tenant token of app a", Err: errors.New("code 10003")})}
	if _, _, ok := s.rank(o, t0.Add(5*time.Second), o.MinInterval); !ok {
		t.Error("a session failing six times in a row on its app's credential is backed off on its own")
	}
	s.err = errors.New("HTTP 500")
	if _, _, ok := s.rank(o, t0.Add(5*time.Second), o.MinInterval); ok {
		t.Error("a session failing six times in a row on an HTTP 500 is not backed off")
	}
}

func TestActivityIsChangesPerIdleAfterFadingWithIt(t *testing.T) {
	o := &Options{IdleAfter: 10 * time.Minute}
	s := &Session{}
	s.noteActivity(o, t0, 6)
	if got, want := s.activityAt(o, t0), 6.0/600; math.Abs(got-want) > 1e-12 {
		t.Errorf("6 changes: %g a second, want 6 per 10 minutes, %g", got, want)
	}
	if got, want := s.activityAt(o, t0.Add(time.Minute)), 6.0/600*math.Exp(-0.1); math.Abs(got-want) > 1e-12 {
		t.Errorf("a minute later: %g a second, want %g (e^-1/10 of it)", got, want)
	}
	// The value of a poll: the chance of a change (Poisson) times staleness.
	stale := 30 * time.Second
	rate := 6.0/600 + quietRate
	if got, want := s.pollValue(o, t0, stale), (1-math.Exp(-rate*30))*30; math.Abs(got-want) > 1e-9 {
		t.Errorf("value of a poll after 30 s: %g, want %g", got, want)
	}
}

// TestAppsTakeTurnsInAClass: each app has its own rate limit, and the
// process polls a few sessions at once: polled in one app's order, they would
// all wait on that app's limit. Within a class the apps take turns.
func TestAppsTakeTurnsInAClass(t *testing.T) {
	w := New(Options{Now: func() time.Time { return t0 }, MinInterval: time.Second})
	w.SetApps([]App{
		{Name: "a", API: newMemAPI(newestFirst, 10), Sessions: []string{"a1", "a2", "a3"}},
		{Name: "b", API: newMemAPI(newestFirst, 10), Sessions: []string{"b1", "b2", "b3"}},
		{Name: "c", API: newMemAPI(newestFirst, 10), Sessions: []string{"c1"}},
	})
	cands, _ := w.plan(t0)
	var got []string
	for _, c := range cands {
		got = append(got, c.s.id)
	}
	if want := []string{"a1", "b1", "c1", "a2", "b2", "a3", "b3"}; !slices.Equal(got, want) {
		t.Errorf("sessions never polled, in the order %v; want the apps' turns %v", got, want)
	}
}
