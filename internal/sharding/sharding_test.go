package sharding

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestNewRejectsWhatNoShardCanBe(t *testing.T) {
	for _, tc := range []struct {
		ordinal, total int
		key            Key
		want           string // in the error; "" for none
	}{
		{0, 1, KeyApp, ""},
		{2, 3, KeySession, ""},
		{3, 3, KeyApp, "--shard 3 must be between 0 and --total-shards - 1 (2)"},
		{-1, 3, KeyApp, "--shard -1 must be between 0"},
		{0, 0, KeyApp, "--total-shards 0 must be at least 1"},
		{0, 2, "tenant", `--shard.key "tenant" must be app or session`},
	} {
		_, err := New(tc.ordinal, tc.total, tc.key)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("New(%d, %d, %s): %v", tc.ordinal, tc.total, tc.key, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("New(%d, %d, %s) = %v, want an error with %q", tc.ordinal, tc.total, tc.key, err, tc.want)
		}
	}
}

func TestParseOrdinal(t *testing.T) {
	for _, tc := range []struct {
		flag, host string
		want       int
		err        string
	}{
		{"3", "whatever", 3, ""},
		{"auto", "aily-exporter-2", 2, ""},
		{"auto", "aily-exporter-ha-10", 10, ""},
		{"auto", "aily-exporter", 0, `the host name "aily-exporter" does not end in -N`},
		{"auto", "laptop", 0, `the host name "laptop" does not end in -N`},
		{"auto", "pod-", 0, "does not end in -N"},
		{"auto", "pod-+1", 0, "does not end in -N"},
		{"two", "", 0, `--shard "two" must be a number or auto`},
	} {
		got, err := ParseOrdinal(tc.flag, tc.host)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseOrdinal(%q, %q) = %d, %v, want %d", tc.flag, tc.host, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseOrdinal(%q, %q) = %d, %v, want an error with %q", tc.flag, tc.host, got, err, tc.err)
		}
	}
}

// The published test vectors of the jump hash (those of the Go ports of the
// paper's reference code), so that another implementation over the same
// keys, as kube-state-metrics', agrees; and its range.
func TestJumpHash(t *testing.T) {
	for key := range uint64(1000) {
		if got := jumpHash(key, 1); got != 0 {
			t.Fatalf("JumpHash(%d, 1) = %d, want 0", key, got)
		}
		for n := 2; n < 20; n++ {
			if got := jumpHash(key, n); got < 0 || got >= n {
				t.Fatalf("JumpHash(%d, %d) = %d, out of range", key, n, got)
			}
		}
	}
	for _, tc := range []struct {
		key     uint64
		buckets int
		want    int
	}{
		{1, 1, 0}, {42, 57, 43}, {0xDEAD10CC, 1, 0}, {0xDEAD10CC, 666, 361}, {256, 1024, 520},
	} {
		if got := jumpHash(tc.key, tc.buckets); got != tc.want {
			t.Errorf("JumpHash(%#x, %d) = %d, want %d", tc.key, tc.buckets, got, tc.want)
		}
	}
}

// Each session belongs to exactly one shard, and the shards take about as
// many each.
func TestEverySessionHasExactlyOneOwner(t *testing.T) {
	for _, key := range []Key{KeyApp, KeySession} {
		const total = 3
		shards := make([]Shard, total)
		for i := range shards {
			var err error
			if shards[i], err = New(i, total, key); err != nil {
				t.Fatal(err)
			}
		}
		per := make([]int, total)
		for a := range 100 {
			app := fmt.Sprintf("app-%d", a)
			for s := range 100 {
				id := fmt.Sprintf("session-%d", s)
				owners := 0
				for i, sh := range shards {
					if sh.OwnsSession(app, id) {
						owners++
						per[i]++
						if !sh.OwnsApp(app) {
							t.Errorf("%s keys: shard %d owns session %s of %s but not the app", key, i, id, app)
						}
					}
				}
				if owners != 1 {
					t.Fatalf("%s keys: session %s of %s has %d owners, want 1", key, id, app, owners)
				}
			}
		}
		if key == KeyApp {
			continue // 100 apps are too few to expect an even split
		}
		for i, n := range per {
			if math.Abs(float64(n)-10000.0/total) > 0.15*10000/total {
				t.Errorf("%s keys: shard %d owns %d of 10000 sessions, want about %d", key, i, n, 10000/total)
			}
		}
	}
}

// Adding a shard to N moves about 1/(N+1) of the keys, all of them to the
// new shard: the cost of resharding that docs/sharding.md states.
func TestAddingAShardMovesAboutOneInNPlusOne(t *testing.T) {
	const keys = 100000
	for n := 1; n <= 8; n++ {
		moved := 0
		for k := range keys {
			key := fmt.Sprintf("app-%d\x00session-%d", k%100, k)
			before, after := shardOf(key, n), shardOf(key, n+1)
			if before != after {
				moved++
				if after != n {
					t.Fatalf("%d → %d shards: key %q moved from %d to %d, not to the new shard", n, n+1, key, before, after)
				}
			}
		}
		share, want := float64(moved)/keys, 1/float64(n+1)
		t.Logf("%d → %d shards: %.2f%% of the keys move (1/(N+1) = %.2f%%)", n, n+1, 100*share, 100*want)
		if math.Abs(share-want) > 0.05*want {
			t.Errorf("%d → %d shards: %.4f of the keys moved, want about %.4f", n, n+1, share, want)
		}
	}
}

func TestDivisor(t *testing.T) {
	for _, tc := range []struct {
		s    Shard
		want float64
	}{
		{Shard{0, 1, KeySession}, 1},
		{Shard{0, 4, KeySession}, 4},
		{Shard{0, 4, KeyApp}, 1},
	} {
		if got := tc.s.Divisor(); got != tc.want {
			t.Errorf("%+v.Divisor() = %v, want %v", tc.s, got, tc.want)
		}
	}
}
