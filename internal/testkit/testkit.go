// Package testkit holds the helpers that tests of several packages share, so
// that each lives once. It imports no package of this module, so that any
// package's own tests may use it without an import cycle; helpers that need
// the Feishu types live in testkit/runs.
package testkit

import (
	"bytes"
	"sync"
	"time"
)

// T0 is the instant the tests' fake clocks start at: 2025-03-01 12:00 UTC.
var T0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// At returns T0 shifted by the given seconds.
func At(sec float64) time.Time { return T0.Add(time.Duration(sec * float64(time.Second))) }

// LogBuffer is a log sink that the code under test writes and the test
// reads concurrently.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
