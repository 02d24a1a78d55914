package testkit

import (
	"runtime"
	"syscall"
	"time"
)

// LiveHeap returns the heap's live bytes: HeapAlloc right after a garbage
// collection. The second collection empties the sync.Pools (an answer's
// buffers and gzip writers), which the first only sets aside, so that the
// benchmarks' heap figures are what is really kept.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// CPUTime is the CPU time the process has used, user and system; 0 if it
// cannot be read.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Millis is d in milliseconds, as the benchmarks report times.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
