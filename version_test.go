package main

import (
	"runtime/debug"
	"testing"

	"github.com/prometheus/common/version"
)

func TestVersionFromBuildInfo(t *testing.T) {
	saved := []string{version.Version, version.Revision, version.BuildDate}
	t.Cleanup(func() { version.Version, version.Revision, version.BuildDate = saved[0], saved[1], saved[2] })
	info := func(v string, settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{Main: debug.Module{Path: "github.com/aily-exporter/aily_exporter", Version: v}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		stamped [3]string // by -ldflags -X: version, revision, date
		info    *debug.BuildInfo
		want    [3]string
	}{
		{"go build in a clone: the module's pseudo-version and the commit",
			[3]string{}, info("v0.0.0-20261127101500-0123456789ab+dirty", "vcs.revision", "0123456789abcdef", "vcs.time", "2026-11-27T10:15:00Z", "vcs.modified", "true"),
			[3]string{"v0.0.0-20261127101500-0123456789ab+dirty", "0123456789abcdef-modified", "2026-11-27T10:15:00Z"}},
		{"go install of a tag",
			[3]string{}, info("v1.2.0"),
			[3]string{"v1.2.0", "", ""}},
		{"go run: no VCS stamping",
			[3]string{}, info("(devel)"),
			[3]string{"(devel)", "", ""}},
		{"make build: the stamped values win",
			[3]string{"1.2.0", "fedcba", "20261127-10:15:00"}, info("v1.2.0", "vcs.revision", "0123456789abcdef", "vcs.time", "2026-11-27T10:15:00Z"),
			[3]string{"1.2.0", "fedcba", "20261127-10:15:00"}},
	} {
		version.Version, version.Revision, version.BuildDate = tc.stamped[0], tc.stamped[1], tc.stamped[2]
		stampVersion(tc.info)
		if got := [3]string{version.Version, version.Revision, version.BuildDate}; got != tc.want {
			t.Errorf("%s: version, revision, date = %q, want %q", tc.name, got, tc.want)
		}
	}
}
