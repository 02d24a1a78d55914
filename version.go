package main

import (
	"runtime/debug"

	"github.com/prometheus/common/version"
)

// stampVersion fills what the Makefile's -ldflags -X would have set, and a
// go build, go install or go run leaves empty, from the module's build info:
// the module's version (a tag, a pseudo-version, or "(devel)" for go run),
// the commit and its time.
func stampVersion(info *debug.BuildInfo) {
	if info == nil {
		return
	}
	if version.Version == "" {
		version.Version = info.Main.Version
	}
	var revision, date string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			date = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if version.Revision == "" && revision != "" {
		if modified {
			revision += "-modified"
		}
		version.Revision = revision
	}
	if version.BuildDate == "" {
		version.BuildDate = date
	}
}
