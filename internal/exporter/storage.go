package exporter

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/state"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// stateFingerprint tells the exporter's state files from any other JSON
// file: what the state belongs to (which apps) is checked app by app when it
// is restored, so that a changed configuration keeps what still applies.
const stateFingerprint = "aily_exporter"

// Storage is the exporter's state on disk (--storage.path): the store, and
// the state read at start, waiting for the first configuration.
type Storage struct {
	store   *state.Store
	logger  log.Logger
	pending *watch.State
}

// OpenStorage opens the state directory and reads the state a previous run
// left there, migrated from an older format version. A state file that
// cannot be used is moved aside by the store; only a directory that cannot be
// created is an error.
func OpenStorage(dir string, logger log.Logger) (*Storage, error) {
	st, err := state.Open(dir, state.Options{Logger: logger, Version: watch.StateVersion, Migrate: watch.MigrateState})
	if err != nil {
		return nil, fmt.Errorf("--storage.path: %w", err)
	}
	s := &Storage{store: st, logger: logger}
	var saved watch.State
	found, err := st.Load(&saved, stateFingerprint)
	switch {
	case err != nil:
		level.Warn(logger).Log("msg", "Cannot read the saved state; starting afresh", "dir", dir, "err", err)
	case found:
		s.pending = &saved
		level.Info(logger).Log("msg", "Carrying on from the saved state", "dir", dir,
			"apps", len(saved.Apps), "sessions", len(saved.Sessions))
	default:
		level.Info(logger).Log("msg", "No saved state: every session starts with a baseline", "dir", dir)
	}
	return s, nil
}

// MissingDirs returns path and those of its parents that do not exist yet,
// the deepest first: the directories that opening the storage there makes.
func MissingDirs(path string) []string {
	var out []string
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return out
		}
		out = append(out, p)
		if filepath.Dir(p) == p {
			return out
		}
	}
}

// RemoveEmptyDirs removes dirs, the deepest first, as long as they are empty:
// a directory that holds anything (a state saved meanwhile) stays, and so do
// its parents.
func RemoveEmptyDirs(dirs []string) {
	for _, d := range dirs {
		if os.Remove(d) != nil {
			return
		}
	}
}

// Save writes the watcher's state (watch.Saver).
func (s *Storage) Save(st *watch.State) error {
	return s.store.Save(st, stateFingerprint)
}

// restore hands the saved state to the watcher before its first
// configuration, and reports whether there was one. State that belongs to
// none of the configured apps is moved aside, as a corrupt file is; unless
// sharded: a shard's state may be of apps that other shards own now, and
// it is simply not carried on (the next save replaces it).
func (s *Storage) restore(w *watch.Watcher, apps []watch.App, sharded bool) bool {
	if s == nil || s.pending == nil {
		return false
	}
	saved := s.pending
	s.pending = nil
	err := w.Restore(saved, apps)
	switch {
	case errors.Is(err, watch.ErrForeignState) && sharded:
		level.Info(s.logger).Log("msg", "The saved state is of apps this shard does not own; starting afresh")
	case errors.Is(err, watch.ErrForeignState):
		s.store.MoveAside(err.Error())
	}
	return true
}

// appIdentity is where an app's runs come from, which a saved state must
// match to be carried on: the credentials' app (or the user token file) and
// the API's address.
func appIdentity(app *config.App) string {
	if app.UserAccessTokenFile != "" {
		return "user_access_token_file=" + app.UserAccessTokenFile + " base_url=" + app.BaseURL
	}
	return "app_id=" + app.AppID + " base_url=" + app.BaseURL
}

// stateMetrics exports the store's statistics: aily_state_*.
type stateMetrics struct {
	store                             *state.Store
	lastSave, took, bytes, saveFailed *prometheus.Desc
}

func newStateMetrics(store *state.Store) *stateMetrics {
	return &stateMetrics{
		store: store,
		lastSave: prometheus.NewDesc("aily_state_last_save_timestamp_seconds",
			"When the state was last saved to --storage.path.", nil, nil),
		took: prometheus.NewDesc("aily_state_save_duration_seconds",
			"How long the last successful save of the state took.", nil, nil),
		bytes: prometheus.NewDesc("aily_state_bytes",
			"Size of the state file.", nil, nil),
		saveFailed: prometheus.NewDesc("aily_state_save_failures_total",
			"Saves of the state that failed (a full disk, a read-only directory); the exporter keeps serving.", nil, nil),
	}
}

func (m *stateMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.lastSave
	ch <- m.took
	ch <- m.bytes
	ch <- m.saveFailed
}

func (m *stateMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.store.Stats()
	last := 0.0
	if !st.LastSave.IsZero() {
		last = float64(st.LastSave.UnixMilli()) / 1000
	}
	ch <- prometheus.MustNewConstMetric(m.lastSave, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(m.took, prometheus.GaugeValue, st.SaveDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(m.saveFailed, prometheus.CounterValue, float64(st.SaveFailures))
}
