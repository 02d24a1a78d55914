// Package state keeps the exporter's state in one file in --storage.path, so
// that a restart carries on where the last process stopped.
//
// The file is a JSON envelope around the caller's payload:
//
//	{"format":"aily_exporter/state","version":1,"fingerprint":"…",
//	 "saved_at":"2026-11-28T08:15:00Z","data":{…},"data_crc32c":"1a2b3c4d"}
//
// Save replaces it atomically (a temporary file in the same directory,
// fsync, rename, fsync of the directory): a process killed at any instant
// leaves the previous file or the new one, never a torn one. The checksum
// guards against what the rename cannot: bits that rot on disk and edits by
// hand. A file that cannot be used (unreadable, empty, truncated, corrupt,
// from a newer format version or from another configuration) is never fatal:
// Load logs what it found, moves the file aside and reports no state. A file
// of an older version is migrated by the caller's Options.Migrate.
//
// The file is readable and writable by its owner only (0o600).
package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

const (
	// FileName is the name of the state file in the storage directory.
	FileName = "state.json"
	// fileFormat identifies a state file of this exporter.
	fileFormat = "aily_exporter/state"
	// defaultVersion is the version Save writes unless Options.Version says
	// otherwise.
	defaultVersion = 1

	tempInfix    = ".tmp-"
	corruptInfix = ".corrupt-"
	// corruptTime is the UTC time in the name of a file moved aside.
	corruptTime = "20060102T150405Z"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configures a Store.
type Options struct {
	// Now returns the current time: the saved_at of a file, the time in the
	// name of one moved aside. Defaults to time.Now.
	Now func() time.Time
	// Logger receives a warning for every file moved aside or that could not
	// be. Defaults to a no-op logger.
	Logger log.Logger
	// Version is the version of the caller's payload, which Save writes;
	// defaultVersion when zero. Load moves a file of a higher version aside,
	// and has the data of a lower one migrated by Migrate.
	Version int
	// Migrate returns the data of a file of version from in the form of
	// Version; when it fails, or is nil, such a file is moved aside.
	Migrate func(from int, data []byte) ([]byte, error)
}

// Stats describes the state file, for the exporter's own metrics.
type Stats struct {
	// LastSave is when the file now on disk was saved: by the last
	// successful Save, or, before any, the saved_at of the file Load read.
	// Zero if neither.
	LastSave time.Time
	// SaveDuration is how long the last successful Save took, fsyncs
	// included. Zero before one.
	SaveDuration time.Duration
	// Bytes is the size of the file now on disk, as last saved or loaded.
	Bytes int64
	// SaveFailures counts the calls to Save that returned an error.
	SaveFailures uint64
}

// Store keeps one state file, FileName, in a directory. Its methods are safe
// for concurrent use; Save and Load run one at a time.
type Store struct {
	dir  string
	path string
	opts Options

	mu sync.Mutex // serialises Load and Save

	statsMu sync.Mutex // guards stats; never held during I/O
	stats   Stats
}

// Open returns the Store of the state file in dir, creating dir (0o755) if
// it is missing, and removes the temporary files that a process killed in
// the middle of a Save left behind. An empty dir is an error: the caller
// turns state off instead.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open state: no storage directory")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Version == 0 {
		opts.Version = defaultVersion
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open state: %s is not a directory", dir)
	}
	s := &Store{dir: dir, path: filepath.Join(dir, FileName), opts: opts}
	// The pattern cannot be malformed: FileName has no metacharacters.
	leftovers, _ := filepath.Glob(filepath.Join(dir, FileName+tempInfix+"*"))
	for _, f := range leftovers {
		if err := os.Remove(f); err != nil {
			level.Warn(opts.Logger).Log("msg", "Cannot remove a temporary state file left by an interrupted save",
				"file", f, "err", err)
		}
	}
	return s, nil
}

// Path returns the path of the state file.
func (s *Store) Path() string { return s.path }

// envelope is the file's outer object. Data is kept raw so that its
// checksum is computed over the bytes as they are in the file.
type envelope struct {
	Format      string          `json:"format"`
	Version     int             `json:"version"`
	Fingerprint string          `json:"fingerprint"`
	SavedAt     time.Time       `json:"saved_at"`
	Data        json.RawMessage `json:"data"`
	DataCRC32C  string          `json:"data_crc32c"`
}

// Load reads the state file into v, a pointer to the caller's payload, and
// reports whether it did. It returns false, nil when there is no file. A file
// that cannot be used is never an error: unreadable, empty, truncated or
// corrupt, of another format, from a newer format version, with a checksum
// that does not match its data, or saved under a fingerprint other than want
// (another configuration); Load logs a warning that says what it found, moves
// the file aside to <name>.corrupt-<UTC time>, sets *v to its zero value and
// returns false, nil. If the file cannot be moved (a read-only directory) it
// says so and carries on all the same. The data of a file of an older
// version is migrated (Options.Migrate) before it is decoded into v; a file
// whose migration fails is moved aside too.
func (s *Store) Load(v any, want string) (bool, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return false, fmt.Errorf("load state: want a non-nil pointer, got %T", v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	var savedAt time.Time
	problem := ""
	if err != nil {
		problem = fmt.Sprintf("an unreadable file (%v)", err)
	} else {
		savedAt, problem = s.decode(b, v, want)
	}
	if problem != "" {
		rv.Elem().SetZero()
		s.setAside(problem)
		return false, nil
	}
	s.statsMu.Lock()
	s.stats.LastSave, s.stats.Bytes = savedAt, int64(len(b))
	s.statsMu.Unlock()
	return true, nil
}

// decode checks the envelope in b, migrates its data from an older version,
// and decodes it into v. It returns what is wrong with the file, or "".
func (s *Store) decode(b []byte, v any, want string) (time.Time, string) {
	if len(b) == 0 {
		return time.Time{}, "an empty file"
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return time.Time{}, fmt.Sprintf("a file that is not a complete JSON state (%v): truncated, corrupt or not JSON", err)
	}
	switch {
	case env.Format != fileFormat:
		return time.Time{}, fmt.Sprintf("a file of format %q, not %q", env.Format, fileFormat)
	case env.Version > s.opts.Version:
		return time.Time{}, fmt.Sprintf("a file of format version %d, newer than this exporter's %d (a downgrade?)", env.Version, s.opts.Version)
	case env.Version < 1:
		return time.Time{}, fmt.Sprintf("a file of unknown format version %d", env.Version)
	case len(env.Data) == 0:
		return time.Time{}, "a file without data"
	}
	if got := checksum(env.Data); got != env.DataCRC32C {
		return time.Time{}, fmt.Sprintf("a file whose data does not match its checksum (crc32c %s, recorded %q): corrupted on disk or edited", got, env.DataCRC32C)
	}
	if env.Fingerprint != want {
		return time.Time{}, fmt.Sprintf("the state of another configuration (fingerprint %q, this one is %q)", env.Fingerprint, want)
	}
	data := []byte(env.Data)
	if env.Version < s.opts.Version {
		if s.opts.Migrate == nil {
			return time.Time{}, fmt.Sprintf("a file of format version %d, which this exporter (version %d) cannot migrate", env.Version, s.opts.Version)
		}
		var err error
		if data, err = s.opts.Migrate(env.Version, data); err != nil {
			return time.Time{}, fmt.Sprintf("a file of format version %d whose migration to version %d failed (%v)", env.Version, s.opts.Version, err)
		}
		level.Info(s.opts.Logger).Log("msg", "Migrated the saved state to the current format", "file", s.path,
			"from_version", env.Version, "to_version", s.opts.Version)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return time.Time{}, fmt.Sprintf("a file whose data does not fit this exporter's state (%v)", err)
	}
	return env.SavedAt, ""
}

// MoveAside moves the state file out of the way as Load does with a file it
// cannot use, for a state the caller found it cannot use (one saved for other
// apps): found says what it is, for the warning.
func (s *Store) MoveAside(found string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setAside(found)
}

// setAside moves the unusable state file out of the way, warning what it
// found and what it does. s.mu is held.
func (s *Store) setAside(found string) {
	l := log.With(s.opts.Logger, "file", s.path, "found", found)
	to, err := s.renameAside()
	if err != nil {
		level.Warn(l).Log("msg", "State file unusable and cannot be moved aside; starting afresh, the next save replaces it",
			"err", err)
		return
	}
	level.Warn(l).Log("msg", "State file unusable; moved aside, starting afresh", "moved_to", to)
}

// renameAside renames the state file to <name>.corrupt-<UTC time>, with a
// suffix -2, -3, … if a file of that name exists.
func (s *Store) renameAside() (string, error) {
	base := s.path + corruptInfix + s.opts.Now().UTC().Format(corruptTime)
	to := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, os.ErrNotExist) {
			break
		}
		to = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(s.path, to); err != nil {
		return "", err
	}
	return to, nil
}

// Save writes v, under fingerprint, to the state file crash-safely: it
// encodes the envelope into a temporary file in the same directory, fsyncs
// it, renames it over the state file and fsyncs the directory. A process
// killed at any instant leaves the previous file or the new one. If Save
// fails before the rename (a full disk, a read-only directory) it removes
// the temporary file, leaves the previous file as it was, counts a failure
// and returns the error; if only the final fsync of the directory fails, the
// new file is in place but might not survive a power loss, and Save reports
// that as a failure too. v must not change while Save runs.
//
// The fingerprint names what the state belongs to, for Load to recognise a
// file of another configuration: it should change when the state would be
// wrong to carry on from (another API endpoint or tenant), not when sessions
// are added or removed, or every such edit would discard the state.
func (s *Store) Save(v any, fingerprint string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.opts.Now()
	size, err := s.save(v, fingerprint, s.opts.Version, start)
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if err != nil {
		s.stats.SaveFailures++
		return fmt.Errorf("save state to %s: %w", s.path, err)
	}
	s.stats.LastSave, s.stats.SaveDuration, s.stats.Bytes = start, s.opts.Now().Sub(start), size
	return nil
}

func (s *Store) save(v any, fingerprint string, version int, now time.Time) (size int64, err error) {
	f, err := os.CreateTemp(s.dir, FileName+tempInfix+"*")
	if err != nil {
		return 0, err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if size, err = encode(f, v, fingerprint, version, now); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), s.path); err != nil {
		return 0, err
	}
	renamed = true
	// The new file is in place; without this a power loss could still lose
	// the rename.
	if err := syncDir(s.dir); err != nil {
		return 0, fmt.Errorf("saved, but not made durable: %w", err)
	}
	return size, nil
}

// encode writes the envelope to w: a header, the data streamed from the
// JSON encoder through a checksum, and the checksum last.
func encode(w io.Writer, v any, fingerprint string, version int, now time.Time) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	header, err := json.Marshal(struct {
		Format      string `json:"format"`
		Version     int    `json:"version"`
		Fingerprint string `json:"fingerprint"`
		SavedAt     string `json:"saved_at"`
	}{fileFormat, version, fingerprint, now.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return 0, err
	}
	bw.Write(header[:len(header)-1]) // without its closing brace
	bw.WriteString(`,"data":`)
	data := &dataWriter{w: bw, h: crc32.New(castagnoli)}
	enc := json.NewEncoder(data)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return 0, fmt.Errorf("encode state: %w", err)
	}
	bw.WriteString(`,"data_crc32c":"` + fmt.Sprintf("%08x", data.h.Sum32()) + "\"}\n")
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// checksum returns the CRC-32C of the data as in the file, in hex.
func checksum(data []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(data, castagnoli))
}

// dataWriter passes the encoder's output to w and hashes it, holding back a
// final newline (the encoder ends each value with one) so that what is
// written and hashed is exactly the JSON value.
type dataWriter struct {
	w       io.Writer
	h       hash.Hash32
	newline bool // a newline held back
}

func (d *dataWriter) Write(p []byte) (int, error) {
	n := len(p)
	if d.newline {
		d.newline = false
		if _, err := d.write([]byte{'\n'}); err != nil {
			return 0, err
		}
	}
	if n > 0 && p[n-1] == '\n' {
		p, d.newline = p[:n-1], true
	}
	if _, err := d.write(p); err != nil {
		return 0, err
	}
	return n, nil
}

func (d *dataWriter) write(p []byte) (int, error) {
	d.h.Write(p)
	return d.w.Write(p)
}

// countWriter counts the bytes written to w.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// syncDir fsyncs a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Stats returns the figures of the state file.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}
