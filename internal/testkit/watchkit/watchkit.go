// Package watchkit holds the test helpers around a watch.Watcher that the
// tests and benchmarks of several packages share.
package watchkit

import "github.com/aily-exporter/aily_exporter/internal/watch"

// Pending returns how many of w's sessions have not been listed well yet
// (their baseline is not done), and the error of the first of them that
// failed.
func Pending(w *watch.Watcher) (pending int, firstErr error) {
	w.EachSnapshot(func(s *watch.Snapshot) {
		if s.LastSuccess.IsZero() {
			pending++
			if firstErr == nil {
				firstErr = s.Err
			}
		}
	})
	return pending, firstErr
}
