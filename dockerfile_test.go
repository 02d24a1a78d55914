package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileBuildsWithThePinnedGo keeps the image, the Makefile and
// go.mod on one Go release.
func TestDockerfileBuildsWithThePinnedGo(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	find := func(name, pattern string) string {
		m := regexp.MustCompile(pattern).FindStringSubmatch(read(name))
		if m == nil {
			t.Fatalf("%s: no match for %s", name, pattern)
		}
		return m[1]
	}
	mod := find("go.mod", `(?m)^toolchain (go[0-9.]+)$`)
	mk := find("Makefile", `(?m)^GO_VERSION\s*:=\s*(go[0-9.]+)\s*$`)
	img := "go" + find("Dockerfile", `(?m)^FROM golang:([0-9.]+)\S* AS build$`)
	if mod != mk || img != mk {
		t.Errorf("go.mod's toolchain %s, the Makefile's GO_VERSION %s and the Dockerfile's golang:%s differ", mod, mk, strings.TrimPrefix(img, "go"))
	}
	// The configuration is a directory in the image, so that a directory
	// can be mounted over it.
	if cmd := find("Dockerfile", `(?m)^CMD \["--config.file=([^"]+)"`); filepath.Dir(cmd) != "/etc/aily_exporter" {
		t.Errorf("the image's default configuration %s is not in /etc/aily_exporter", cmd)
	}
	// The state is kept in a volume the non-root user can write.
	state := find("Dockerfile", `(?m)^CMD \[.*"--storage.path=([^"]+)"`)
	if vol := find("Dockerfile", `(?m)^VOLUME (\S+)$`); vol != state {
		t.Errorf("the image keeps its state in %s but declares the volume %s", state, vol)
	}
	if !strings.Contains(read("Dockerfile"), "--chown=65532:65532 "+state) {
		t.Errorf("the state directory %s is not owned by the nonroot user 65532 in the image", state)
	}
}
