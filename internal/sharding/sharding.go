// Package sharding decides which shard of a sharded exporter watches an app
// or a session, as kube-state-metrics does (pkg/sharding): the jump
// consistent hash (Lamping & Veach, https://arxiv.org/abs/1406.2294) of the
// FNV-64a hash of the key, over the total number of shards. Adding a shard
// moves only the keys the new shard takes, about 1/(N+1) of them.
package sharding

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Key is what is distributed over the shards.
type Key string

const (
	// KeyApp gives each app, with all its sessions, to one shard.
	KeyApp Key = "app"
	// KeySession gives each session to one shard; every shard watches every
	// app, at a share of its rate limit and daily budget.
	KeySession Key = "session"
)

// Shard is one shard's place among the others: its ordinal, the total and
// what is distributed. The zero value is the one shard of an exporter that is
// not sharded; New checks the flags.
type Shard struct {
	Ordinal int
	Total   int
	Key     Key
}

// New returns shard ordinal of total, distributing key, or an error that
// names the flag at fault.
func New(ordinal, total int, key Key) (Shard, error) {
	switch {
	case total < 1:
		return Shard{}, fmt.Errorf("--total-shards %d must be at least 1", total)
	case ordinal < 0 || ordinal >= total:
		return Shard{}, fmt.Errorf("--shard %d must be between 0 and --total-shards - 1 (%d)", ordinal, total-1)
	case key != KeyApp && key != KeySession:
		return Shard{}, fmt.Errorf("--shard.key %q must be app or session", key)
	}
	return Shard{Ordinal: ordinal, Total: total, Key: key}, nil
}

// Sharded reports whether there is more than one shard.
func (s Shard) Sharded() bool { return s.Total > 1 }

// OwnsApp reports whether the shard watches any of app's sessions: with
// app keys, the app's own shard; with session keys, every shard.
func (s Shard) OwnsApp(app string) bool {
	if s.Key == KeySession || s.Total <= 1 {
		return true
	}
	return shardOf(app, s.Total) == s.Ordinal
}

// OwnsSession reports whether the shard watches session id of app.
func (s Shard) OwnsSession(app, id string) bool {
	if s.Total <= 1 {
		return true
	}
	if s.Key == KeyApp {
		return shardOf(app, s.Total) == s.Ordinal
	}
	return shardOf(app+"\x00"+id, s.Total) == s.Ordinal
}

// Divisor is what an app's rate limit and daily budget are divided by on
// this shard: the total with session keys (each shard polls a share of
// every app's sessions on the app's one quota), 1 with app keys.
func (s Shard) Divisor() float64 {
	if s.Key == KeySession && s.Total > 1 {
		return float64(s.Total)
	}
	return 1
}

// shardOf returns the shard, among total, that owns key.
func shardOf(key string, total int) int {
	h := fnv.New64a()
	h.Write([]byte(key)) // never fails
	return jumpHash(h.Sum64(), total)
}

// jumpHash is the jump consistent hash of key over buckets (at least 1):
// Lamping and Veach's algorithm, as kube-state-metrics has it.
func jumpHash(key uint64, buckets int) int {
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// ParseOrdinal reads --shard: a number, or "auto" for the trailing -N of
// hostname, as a StatefulSet names its pods (aily-exporter-2 is shard 2).
func ParseOrdinal(flag, hostname string) (int, error) {
	if flag != "auto" {
		n, err := strconv.Atoi(flag)
		if err != nil {
			return 0, fmt.Errorf("--shard %q must be a number or auto", flag)
		}
		return n, nil
	}
	i := strings.LastIndexByte(hostname, '-')
	n, err := strconv.Atoi(hostname[i+1:])
	if i < 0 || err != nil || n < 0 || hostname[i+1:] != strconv.Itoa(n) {
		return 0, fmt.Errorf("--shard=auto: the host name %q does not end in -N (a StatefulSet pod's name, such as aily-exporter-0); give --shard a number", hostname)
	}
	return n, nil
}
