package main

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/alecthomas/kingpin/v2"
)

// The documentation is README.md, a landing page, and the pages of docs/; the
// code, the rules, the dashboard and the chart point into them. These tests
// keep those pointers and the flag tables true.

var (
	// mdLink is an inline Markdown link or image: [text](target) or
	// [text](target "title"). The text may span lines.
	mdLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// codeSpan is inline code, whose brackets are not links.
	codeSpan = regexp.MustCompile("`[^`]*`")
	// atxHeading is a Markdown heading: "## Text".
	atxHeading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	// htmlAnchor is an explicit anchor: <a id="x"> or <a name="x">.
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	// repoURL is a link to a file of this repository on GitHub, with an
	// optional anchor; no path is the README.
	repoURL = regexp.MustCompile(`https://github\.com/aily-exporter/aily_exporter(?:/(?:blob|tree)/main/([^\s"'#)>\]` + "`" + `]*))?(?:#([A-Za-z0-9_-]+))?`)
	// docsMention is a page of docs/ named in code, configuration or prose,
	// relative to the repository's root (URLs, which may have a docs/ of
	// their own, removed first).
	docsMention = regexp.MustCompile(`\bdocs/[A-Za-z0-9_-]+\.md\b`)
	anyURL      = regexp.MustCompile(`[a-z]+://[^\s"'<>()\]]+`)
)

// repoTextFiles returns the repository's text files that may point into the
// documentation, relative to the root: Markdown, Go, YAML, JSON, jsonnet,
// templates, the Dockerfile and the Makefile. Hidden directories and ./bin
// (installed tools) are left out.
func repoTextFiles(t *testing.T) []string {
	t.Helper()
	exts := []string{".md", ".go", ".yml", ".yaml", ".json", ".txt", ".tpl", ".jsonnet", ".libsonnet"}
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || path == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		// This file's own examples of broken links are not pointers.
		if path == "docs_test.go" {
			return nil
		}
		if slices.Contains(exts, filepath.Ext(path)) || d.Name() == "Dockerfile" || d.Name() == "Makefile" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// markdownText returns a Markdown document with its fenced code blocks and
// inline code removed, so that only prose links remain; lines are kept.
func markdownText(doc string) string {
	var b strings.Builder
	fenced := false
	for line := range strings.Lines(doc) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			b.WriteString("\n")
			continue
		}
		if fenced {
			b.WriteString("\n")
			continue
		}
		b.WriteString(codeSpan.ReplaceAllString(line, ""))
	}
	return b.String()
}

// githubAnchor returns the anchor GitHub gives a heading's text: inline code
// and links reduced to their text, lower case, punctuation dropped, each
// space a hyphen.
func githubAnchor(heading string) string {
	heading = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors of a Markdown document: one per heading
// (GitHub numbers repeated ones: x, x-1, x-2), and explicit HTML anchors.
func anchors(doc string) map[string]bool {
	found := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for line := range strings.Lines(doc) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		if m := atxHeading.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
			a := githubAnchor(m[1])
			if n := seen[a]; n > 0 {
				found[a+"-"+strconv.Itoa(n)] = true
			} else {
				found[a] = true
			}
			seen[a]++
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			found[m[1]] = true
		}
	}
	return found
}

func TestGithubAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"Try it: two commands":                  "try-it-two-commands",
		"Polling, counting and state":           "polling-counting-and-state",
		"A configuration directory, not a file": "a-configuration-directory-not-a-file",
		"Secret files and uid 65532":            "secret-files-and-uid-65532",
		"AilyRunFailureRatioHigh":               "ailyrunfailureratiohigh",
		"`aily_runs` and [more](x.md)":          "aily_runs-and-more",
		"End to end, with a 3 s timeout":        "end-to-end-with-a-3-s-timeout",
		"make test":                             "make-test",
	} {
		if got := githubAnchor(heading); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
	got := anchors("# A\n\n## B\n\n```\n## Not a heading\n```\n\n## B\n<a id=\"here\"></a>\n")
	want := map[string]bool{"a": true, "b": true, "b-1": true, "here": true}
	if !maps.Equal(got, want) {
		t.Errorf("anchors = %v, want %v", got, want)
	}
}

// brokenLinks returns, for the repository's files, every pointer into the
// repository that does not resolve, as "file: target (why)".
func brokenLinks(t *testing.T, files []string) []string {
	t.Helper()
	var broken []string
	reported := map[string]bool{}
	report := func(b string) {
		if !reported[b] {
			reported[b] = true
			broken = append(broken, b)
		}
	}
	docs := map[string]string{} // Markdown file → its text
	read := func(path string) (string, bool) {
		if s, ok := docs[path]; ok {
			return s, true
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false
		}
		docs[path] = string(b)
		return string(b), true
	}
	// target checks that path (relative to the root) exists and, if anchor is
	// not empty, that it is a Markdown file with that anchor.
	target := func(from, path, anchor, link string) {
		info, err := os.Stat(path)
		if err != nil {
			report(from + ": " + link + " (no such file)")
			return
		}
		if anchor == "" {
			return
		}
		if info.IsDir() || filepath.Ext(path) != ".md" {
			report(from + ": " + link + " (an anchor in a file that is not Markdown)")
			return
		}
		doc, _ := read(path)
		if !anchors(doc)[anchor] {
			report(from + ": " + link + " (no heading #" + anchor + " in " + path + ")")
		}
	}
	for _, file := range files {
		text, ok := read(file)
		if !ok {
			t.Fatalf("read %s", file)
		}
		if filepath.Ext(file) == ".md" {
			for _, m := range mdLink.FindAllStringSubmatch(markdownText(text), -1) {
				link := m[1]
				if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
					continue
				}
				path, anchor, _ := strings.Cut(link, "#")
				if path == "" {
					path = file
				} else {
					path = filepath.Join(filepath.Dir(file), path)
				}
				target(file, path, anchor, link)
			}
		}
		for _, m := range repoURL.FindAllStringSubmatch(text, -1) {
			path := strings.TrimSuffix(m[1], "/")
			if path == "" {
				path = "README.md"
			}
			target(file, path, m[2], m[0])
		}
		for _, m := range docsMention.FindAllString(anyURL.ReplaceAllString(text, ""), -1) {
			target(file, m, "", m)
		}
	}
	return broken
}

// TestDocsLinksResolve: every relative link of every Markdown file, with its
// anchor, every link to this repository on GitHub (the alerts' runbook_url,
// the dashboard's link) and every page of docs/ named anywhere resolves to a
// file of the repository and a heading of it.
func TestDocsLinksResolve(t *testing.T) {
	files := repoTextFiles(t)
	var markdown int
	for _, f := range files {
		if filepath.Ext(f) == ".md" {
			markdown++
		}
	}
	if markdown < 5 || !slices.Contains(files, "README.md") {
		t.Fatalf("found %d Markdown files (%v), want README.md and docs/", markdown, files)
	}
	for _, b := range brokenLinks(t, files) {
		t.Error(b)
	}
}

// TestDocsLinkCheckFindsBrokenLinks: the check above fails where it should.
func TestDocsLinkCheckFindsBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for name, text := range map[string]string{
		"README.md": "# Title\n\n## Good heading\n\n[ok](docs/a.md#a-heading) [ok](#good-heading)\n" +
			"[missing file](docs/b.md) [missing anchor](docs/a.md#nothing-here)\n" +
			"[missing own anchor](#bad-heading)\n\n```\n[in code](nowhere.md)\n```\n`[in code](nowhere.md)`\n",
		"docs/a.md":   "# A heading\n\n[up](../README.md#good-heading) [up, wrong](../README.md#title-1)\n",
		"alerts.yml":  "runbook_url: https://github.com/aily-exporter/aily_exporter/blob/main/docs/a.md#gone\n",
		"dash.json":   `{"url": "https://github.com/aily-exporter/aily_exporter/blob/main/docs/a.md"}`,
		"handler.go":  "// see docs/missing.md\n",
		"values.yaml": "# see docs/a.md\n",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := brokenLinks(t, repoTextFiles(t))
	want := []string{
		"README.md: docs/b.md (no such file)",
		"README.md: docs/a.md#nothing-here (no heading #nothing-here in docs/a.md)",
		"README.md: #bad-heading (no heading #bad-heading in README.md)",
		"docs/a.md: ../README.md#title-1 (no heading #title-1 in README.md)",
		"alerts.yml: https://github.com/aily-exporter/aily_exporter/blob/main/docs/a.md#gone (no heading #gone in docs/a.md)",
		"handler.go: docs/missing.md (no such file)",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("broken links:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDocsFlagTables: the flags table of docs/configuration.md lists every
// flag of --help with its default, and the README's main flags are flags with
// the same defaults.
func TestDocsFlagTables(t *testing.T) {
	a := kingpin.New(programName, "")
	addFlags(a)
	help := map[string]string{"version": ""} // main adds --version
	for _, fl := range a.Model().Flags {
		if fl.Hidden || fl.Name == "help" {
			continue
		}
		def := strings.Join(fl.Default, ",")
		if def == "" && fl.IsBoolFlag() {
			def = "false"
		}
		help[fl.Name] = def
	}
	full := testkit.FlagTable(t, filepath.Join("docs", "configuration.md"), "## Flags")
	for name, def := range help {
		documented, ok := full[name]
		switch {
		case !ok:
			t.Errorf("--%s is not in the flags table of docs/configuration.md", name)
		case documented != def:
			t.Errorf("docs/configuration.md: --%s defaults to %q, --help says %q", name, documented, def)
		}
	}
	for name := range full {
		if _, ok := help[name]; !ok {
			t.Errorf("docs/configuration.md lists --%s, which --help does not", name)
		}
	}
	landing := testkit.FlagTable(t, "README.md", "## Main flags")
	if len(landing) < 5 {
		t.Errorf("found %d flags in the README's main flags, want its table", len(landing))
	}
	for name, documented := range landing {
		if def, ok := help[name]; !ok {
			t.Errorf("README.md lists --%s, which --help does not", name)
		} else if documented != def {
			t.Errorf("README.md: --%s defaults to %q, --help says %q", name, documented, def)
		}
	}
}
