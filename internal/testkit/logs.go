package testkit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Logger is the logfmt logger the command makes (main.go's newLogger with
// --log.format=logfmt), writing to w the lines at lvl and above: the tests
// of the application read its logs as an operator would.
func Logger(w io.Writer, lvl string) log.Logger {
	base := level.NewFilter(log.NewLogfmtLogger(log.NewSyncWriter(w)), level.Allow(level.ParseDefault(lvl, level.InfoValue())))
	return log.With(base, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
}

// logfmtPair is one key=value of a logfmt line.
type logfmtPair struct{ key, value string }

// parseLogfmt splits a logfmt line into its pairs, in order, keeping
// duplicated keys; quoted values are unquoted.
func parseLogfmt(t testing.TB, line string) []logfmtPair {
	t.Helper()
	var out []logfmtPair
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], ` "`) {
			t.Fatalf("not logfmt: %q", line)
		}
		key := s[:eq]
		s = s[eq+1:]
		var value string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for ; end < len(s) && s[end] != '"'; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				t.Fatalf("unterminated quote: %q", line)
			}
			var err error
			if value, err = unquote(s[:end+1]); err != nil {
				t.Fatalf("bad quoting in %q: %v", line, err)
			}
			s = s[end+1:]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			value, s = s[:end], s[end:]
		}
		out = append(out, logfmtPair{key, value})
	}
	return out
}

func unquote(q string) (string, error) {
	var s string
	_, err := fmt.Sscanf(q, "%q", &s)
	return s, err
}

// LogLine is a parsed logfmt line whose keys are each present once.
type LogLine map[string]string

// LogLines parses every line of logs that contains substr, failing the test
// on a line that is not logfmt or that repeats a key.
func LogLines(t testing.TB, logs, substr string) []LogLine {
	t.Helper()
	var out []LogLine
	for _, line := range strings.Split(logs, "\n") {
		if line == "" || !strings.Contains(line, substr) {
			continue
		}
		l := LogLine{}
		for _, p := range parseLogfmt(t, line) {
			if _, dup := l[p.key]; dup {
				t.Errorf("key %q twice in %q", p.key, line)
			}
			l[p.key] = p.value
		}
		out = append(out, l)
	}
	return out
}

// JSONLines decodes every line of logs that contains substr as a JSON
// object, failing the test on a line that is not one.
func JSONLines(t testing.TB, logs, substr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if line == "" || !strings.Contains(line, substr) {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		out = append(out, m)
	}
	return out
}
