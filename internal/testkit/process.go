package testkit

import (
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is an exporter binary that StartExporter started.
type Process struct {
	Cmd *exec.Cmd
	// Addr is the host:port it serves on.
	Addr string
	// Done receives the process' exit. Whoever receives it sends nil back,
	// for the test's cleanup to receive in turn.
	Done chan error
}

// StartExporter runs the exporter binary bin with args and
// --web.listen-address on a free loopback port, its output to logs, in a
// process group of its own (so that a signal to the test's group does not
// reach it), and waits until /-/ready answers, for 15 s at most. The test's
// cleanup kills it.
func StartExporter(t testing.TB, bin string, logs *LogBuffer, args ...string) *Process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append(args, "--web.listen-address="+addr)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	x := &Process{Cmd: cmd, Addr: addr, Done: make(chan error, 1)}
	go func() { x.Done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-x.Done; x.Done <- nil })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return x
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %v not ready after 15 s; logs:\n%s", bin, args, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
