package testkit

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// flagRow is a row of a Markdown flags table: | `--name` | default | …,
// the name possibly followed by an alias (`--name`, `--alias`).
var flagRow = regexp.MustCompile("^\\| `--([a-z0-9.-]+)`(?:, `--[a-z0-9.-]+`)? \\|([^|]*)\\|")

// FlagTable returns the flags of the first table under heading in the
// Markdown file at path, with their defaults as written (backquotes
// removed): the docs and the Helm chart are checked against the command's
// flags by it.
func FlagTable(t testing.TB, path, heading string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags := map[string]string{}
	in := false
	for s := bufio.NewScanner(f); s.Scan(); {
		line := s.Text()
		switch {
		case line == heading:
			in = true
		case in && strings.HasPrefix(line, "#"):
			return flags
		case in:
			if m := flagRow.FindStringSubmatch(line); m != nil {
				flags[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
			}
		}
	}
	if !in {
		t.Fatalf("%s has no heading %q", path, heading)
	}
	return flags
}
