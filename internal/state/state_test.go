package state

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// session is a small payload for the tests.
type session struct {
	WatchStart int64          `json:"watch_start"`
	InFlight   []string       `json:"in_flight"`
	Counts     map[string]int `json:"counts"`
}

type payload struct {
	Sessions map[string]session `json:"sessions"`
}

var (
	testNow = time.Date(2026, 11, 28, 8, 15, 0, 0, time.UTC)
	example = payload{Sessions: map[string]session{
		"sess_1": {WatchStart: 1764317700, InFlight: []string{"run_a", "run_b"}, Counts: map[string]int{"succeeded": 3, "failed": 1}},
		"sess_2": {WatchStart: 1764317701, Counts: map[string]int{"succeeded": 0}},
	}}
	movedAside = regexp.MustCompile(`^state\.json\.corrupt-20261128T081500Z(-[0-9]+)?$`)
)

// logRecorder is a logger that keeps what it is given.
type logRecorder struct {
	mu      sync.Mutex
	records []map[string]string
}

func (r *logRecorder) Log(keyvals ...any) error {
	m := map[string]string{}
	for i := 0; i+1 < len(keyvals); i += 2 {
		m[fmt.Sprint(keyvals[i])] = fmt.Sprint(keyvals[i+1])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, m)
	return nil
}

// String returns the records, one a line.
func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, m := range r.records {
		fmt.Fprintln(&b, m)
	}
	return b.String()
}

// only returns the only record, failing the test if there is not exactly one.
func (r *logRecorder) only(t *testing.T) map[string]string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.records) != 1 {
		t.Fatalf("logged %d records, want 1: %v", len(r.records), r.records)
	}
	return r.records[0]
}

// open returns a Store over a new temporary directory, with a fixed clock,
// and what it logs.
func open(t *testing.T) (*Store, *logRecorder) {
	t.Helper()
	logs := &logRecorder{}
	s, err := Open(filepath.Join(t.TempDir(), "data"), Options{
		Now:    func() time.Time { return testNow },
		Logger: logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// files returns the names of the files in dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func mustSave(t *testing.T, s *Store, v any, fingerprint string) {
	t.Helper()
	if err := s.Save(v, fingerprint); err != nil {
		t.Fatal(err)
	}
}

func TestSavedStateLoadsAsSaved(t *testing.T) {
	s, logs := open(t)
	mustSave(t, s, example, "fp1")

	s2, err := Open(s.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got payload
	ok, err := s2.Load(&got, "fp1")
	if !ok || err != nil {
		t.Fatalf("Load = %v, %v; want true, nil", ok, err)
	}
	if diff := cmp.Diff(example, got); diff != "" {
		t.Errorf("loaded state differs (-saved +loaded):\n%s", diff)
	}
	if logs.String() != "" {
		t.Errorf("unexpected log: %s", logs)
	}
	if names := files(t, s.dir); !cmp.Equal(names, []string{FileName}) {
		t.Errorf("files in the directory = %q, want only %s", names, FileName)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{LastSave: testNow, Bytes: fi.Size()}
	if got := s2.Stats(); !cmp.Equal(got, want) {
		t.Errorf("Stats after Load = %+v, want %+v", got, want)
	}
	if got := s.Stats(); got.Bytes != fi.Size() || !got.LastSave.Equal(testNow) || got.SaveFailures != 0 {
		t.Errorf("Stats after Save = %+v, want %d bytes saved at %v", got, fi.Size(), testNow)
	}
}

func TestFileIsTheDocumentedEnvelope(t *testing.T) {
	s, _ := open(t)
	mustSave(t, s, map[string]int{"a": 1}, "fp1")
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"format":"aily_exporter/state","version":1,"fingerprint":"fp1","saved_at":"2026-11-28T08:15:00Z",` +
		`"data":{"a":1},"data_crc32c":"` + checksum([]byte(`{"a":1}`)) + `"}` + "\n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
}

func TestNoFileIsNoState(t *testing.T) {
	s, logs := open(t)
	var got payload
	if ok, err := s.Load(&got, "fp1"); ok || err != nil {
		t.Fatalf("Load = %v, %v; want false, nil", ok, err)
	}
	if logs.String() != "" {
		t.Errorf("unexpected log: %s", logs)
	}
	if got := s.Stats(); got != (Stats{}) {
		t.Errorf("Stats = %+v, want zero", got)
	}
}

func TestLoadWantsAPointer(t *testing.T) {
	s, _ := open(t)
	mustSave(t, s, example, "fp1")
	if _, err := s.Load(payload{}, "fp1"); err == nil {
		t.Error("Load into a non-pointer: no error")
	}
	if names := files(t, s.dir); !cmp.Equal(names, []string{FileName}) {
		t.Errorf("files = %q: a programming error must not move the file aside", names)
	}
}

func TestUnusableFileIsMovedAsideAndStateStartsAfresh(t *testing.T) {
	valid := func(t *testing.T) []byte {
		s, _ := open(t)
		mustSave(t, s, example, "fp1")
		b, err := os.ReadFile(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}(t)
	replace := func(old, new string) []byte {
		if !bytes.Contains(valid, []byte(old)) {
			t.Fatalf("%q not in the file", old)
		}
		return bytes.Replace(valid, []byte(old), []byte(new), 1)
	}
	mismatchedData := func(t *testing.T) []byte {
		s, _ := open(t)
		mustSave(t, s, []string{"not", "a", "payload"}, "fp1")
		b, _ := os.ReadFile(s.Path())
		return b
	}(t)

	tests := []struct {
		name  string
		file  []byte
		dir   bool // the state file is a directory
		want  string
		found string // in the warning
	}{
		{name: "empty file", file: []byte{}, found: "an empty file"},
		{name: "not JSON", file: []byte("hello\n"), found: "not a complete JSON state"},
		{name: "JSON but not an object", file: []byte("[1,2]"), found: "not a complete JSON state"},
		{name: "wrong format string", file: replace(`"aily_exporter/state"`, `"alertmanager/silences"`), found: `a file of format "alertmanager/silences"`},
		{name: "no format", file: []byte(`{"version":1}`), found: `a file of format ""`},
		{name: "newer version", file: replace(`"version":1`, `"version":2`), found: "format version 2, newer than this exporter's 1"},
		{name: "version 0", file: replace(`"version":1`, `"version":0`), found: "unknown format version 0"},
		{name: "no data", file: []byte(`{"format":"aily_exporter/state","version":1}`), found: "a file without data"},
		{name: "a bit flipped in the data", file: replace(`"run_a"`, `"run_c"`), found: "does not match its checksum"},
		{name: "checksum removed", file: replace(`"data_crc32c"`, `"crc"`), found: "does not match its checksum"},
		{name: "foreign fingerprint", file: valid, want: "fp2", found: `another configuration (fingerprint "fp1", this one is "fp2")`},
		{name: "data of another shape", file: mismatchedData, found: "data does not fit"},
		{name: "state file is a directory", dir: true, found: "/data/" + FileName + ": is a directory)"},
	}
	for n := 0; n < len(valid)-1; n += 1 + n/4 { // the last byte is the final newline
		found := "not a complete JSON state (unexpected end of JSON input)"
		if n == 0 {
			found = "an empty file"
		}
		tests = append(tests, struct {
			name  string
			file  []byte
			dir   bool
			want  string
			found string
		}{name: "truncated at " + strconv.Itoa(n), file: valid[:n], found: found})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logs := open(t)
			if tt.dir {
				if err := os.Mkdir(s.Path(), 0o755); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(s.Path(), tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = "fp1"
			}
			got := payload{Sessions: map[string]session{"left": {}}}
			ok, err := s.Load(&got, want)
			if ok || err != nil {
				t.Fatalf("Load = %v, %v; want false, nil", ok, err)
			}
			if got.Sessions != nil {
				t.Errorf("payload after a failed Load = %+v, want zero", got)
			}
			rec := logs.only(t)
			if rec["level"] != "warn" || !strings.Contains(rec["msg"], "moved aside") || rec["file"] != s.Path() {
				t.Errorf("log %v is not a warning of %s moved aside", rec, s.Path())
			}
			if !strings.Contains(rec["found"], tt.found) {
				t.Errorf("warning found=%q, want it to say %q", rec["found"], tt.found)
			}
			names := files(t, s.dir)
			if len(names) != 1 || !movedAside.MatchString(names[0]) {
				t.Fatalf("files = %q, want only the file moved aside as %v", names, movedAside)
			}
			if rec["moved_to"] != filepath.Join(s.dir, names[0]) {
				t.Errorf("warning moved_to=%q, want %q", rec["moved_to"], filepath.Join(s.dir, names[0]))
			}
			if !tt.dir {
				if b, _ := os.ReadFile(filepath.Join(s.dir, names[0])); !bytes.Equal(b, tt.file) {
					t.Errorf("file moved aside = %q, want %q", b, tt.file)
				}
			}

			// A fresh start: the next Save and Load work.
			mustSave(t, s, example, want)
			var again payload
			if ok, err := s.Load(&again, want); !ok || err != nil {
				t.Fatalf("Load after a fresh Save = %v, %v", ok, err)
			}
		})
	}
}

func TestSecondFileMovedAsideInTheSameSecondKeepsTheFirst(t *testing.T) {
	s, _ := open(t)
	for i := range 3 {
		if err := os.WriteFile(s.Path(), []byte("broken "+strconv.Itoa(i)), 0o600); err != nil {
			t.Fatal(err)
		}
		var p payload
		if ok, err := s.Load(&p, "fp1"); ok || err != nil {
			t.Fatalf("Load = %v, %v; want false, nil", ok, err)
		}
	}
	want := []string{"state.json.corrupt-20261128T081500Z", "state.json.corrupt-20261128T081500Z-2", "state.json.corrupt-20261128T081500Z-3"}
	if names := files(t, s.dir); !cmp.Equal(names, want) {
		t.Errorf("files = %q, want %q", names, want)
	}
}

func TestOpen(t *testing.T) {
	if _, err := Open("", Options{}); err == nil {
		t.Error("Open(\"\"): no error")
	}

	dir := filepath.Join(t.TempDir(), "a", "b")
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatalf("Open of a missing directory: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755&^umask() {
		t.Errorf("directory created: %v, %v", fi.Mode(), err)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file, Options{}); err == nil {
		t.Error("Open of a regular file: no error")
	}
	if _, err := Open("/proc/aily-state", Options{}); err == nil {
		t.Error("Open of a directory that cannot be created: no error")
	}
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func TestOpenRemovesTemporaryFilesOfAnInterruptedSave(t *testing.T) {
	s, _ := open(t)
	mustSave(t, s, example, "fp1")
	left := filepath.Join(s.dir, FileName+tempInfix+"123456")
	if err := os.WriteFile(left, []byte(`{"format":"aily_exp`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s.dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if names := files(t, s.dir); !cmp.Equal(names, []string{FileName}) {
		t.Errorf("files = %q, want only %s", names, FileName)
	}
}

// checkFailedSave checks that a Save that failed left the previous file as it
// was, no temporary file, and a failure in the stats.
func checkFailedSave(t *testing.T, s *Store, err error, previous []byte, failures uint64) {
	t.Helper()
	if err == nil {
		t.Fatal("Save: no error")
	}
	if !strings.Contains(err.Error(), "save state to "+s.Path()) {
		t.Errorf("error %q does not name the file", err)
	}
	if b, err := os.ReadFile(s.Path()); err != nil || !bytes.Equal(b, previous) {
		t.Errorf("previous file not intact: %q, %v", b, err)
	}
	if names := files(t, s.dir); !cmp.Equal(names, []string{FileName}) {
		t.Errorf("files = %q, want only %s", names, FileName)
	}
	if got := s.Stats().SaveFailures; got != failures {
		t.Errorf("SaveFailures = %d, want %d", got, failures)
	}
}

func TestSaveToAReadOnlyDirectoryFailsAndKeepsThePreviousFile(t *testing.T) {
	if runAsNonRoot(t) {
		return
	}
	s, logs := open(t)
	mustSave(t, s, example, "fp1")
	previous, _ := os.ReadFile(s.Path())
	if err := os.Chmod(s.dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(s.dir, 0o755) })

	checkFailedSave(t, s, s.Save(payload{}, "fp1"), previous, 1)

	// Load of an unusable file there: a warning, no move, no error.
	if err := os.Chmod(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.dir, 0o500); err != nil {
		t.Fatal(err)
	}
	var p payload
	if ok, err := s.Load(&p, "fp1"); ok || err != nil {
		t.Fatalf("Load = %v, %v; want false, nil", ok, err)
	}
	rec := logs.only(t)
	if rec["level"] != "warn" || !strings.Contains(rec["msg"], "cannot be moved aside") ||
		!strings.Contains(rec["err"], "permission denied") || !strings.Contains(rec["found"], "not a complete JSON state") {
		t.Errorf("warning %v does not say the file could not be moved", rec)
	}
	if names := files(t, s.dir); !cmp.Equal(names, []string{FileName}) {
		t.Errorf("files = %q, want only %s", names, FileName)
	}
}

func TestSaveToAFullDiskFailsAndKeepsThePreviousFile(t *testing.T) {
	s, _ := open(t)
	mustSave(t, s, example, "fp1")
	previous, _ := os.ReadFile(s.Path())

	// A file size limit makes writes fail as a full disk does, even for root.
	big := payload{Sessions: map[string]session{}}
	for i := range 1000 {
		big.Sessions["sess_"+strconv.Itoa(i)] = example.Sessions["sess_1"]
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	small := lim
	small.Cur = 4096
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		t.Skipf("cannot limit file sizes: %v", err)
	}
	err := s.Save(big, "fp1")
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	checkFailedSave(t, s, err, previous, 1)
	if !strings.Contains(err.Error(), "file too large") {
		t.Errorf("error %q is not the write's", err)
	}

	mustSave(t, s, big, "fp1")
	if got := s.Stats(); got.SaveFailures != 1 || got.Bytes <= int64(len(previous)) {
		t.Errorf("Stats after a Save that worked again = %+v", got)
	}
}

func TestSaveToADirectoryReplacedByAFileFails(t *testing.T) {
	s, _ := open(t)
	mustSave(t, s, example, "fp1")
	if err := os.RemoveAll(s.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(example, "fp1"); err == nil {
		t.Fatal("Save: no error")
	}
	if got := s.Stats().SaveFailures; got != 1 {
		t.Errorf("SaveFailures = %d, want 1", got)
	}
}

func TestUnencodablePayloadFailsAndKeepsThePreviousFile(t *testing.T) {
	s, _ := open(t)
	mustSave(t, s, example, "fp1")
	previous, _ := os.ReadFile(s.Path())
	checkFailedSave(t, s, s.Save(map[string]any{"f": func() {}}, "fp1"), previous, 1)
}

func TestStatsMeasureTheSave(t *testing.T) {
	now := testNow
	s, err := Open(t.TempDir(), Options{Now: func() time.Time {
		now = now.Add(250 * time.Millisecond)
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, example, "fp1")
	fi, _ := os.Stat(s.Path())
	want := Stats{LastSave: testNow.Add(250 * time.Millisecond), SaveDuration: 250 * time.Millisecond, Bytes: fi.Size()}
	if got := s.Stats(); !cmp.Equal(got, want) {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}
