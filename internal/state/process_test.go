package state

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The environment variables that make the test binary a helper process.
const (
	helperEnv    = "AILY_STATE_HELPER"     // what the helper does
	helperDirEnv = "AILY_STATE_HELPER_DIR" // its storage directory
	nonRootEnv   = "AILY_STATE_NON_ROOT"   // set in a test re-run as a non-root user
)

// crashPayloads are the two states the helper saves in turn: large enough
// that a save takes a while, different in size so that a torn file shows.
func crashPayloads() [2]payload {
	var ps [2]payload
	for i := range ps {
		ps[i] = payload{Sessions: map[string]session{}}
		for j := range 2000 + 1000*i {
			ps[i].Sessions[fmt.Sprintf("sess_%d_%05d", i, j)] = session{
				WatchStart: int64(j),
				InFlight:   []string{fmt.Sprintf("run_%d_%020d", i, j)},
				Counts:     map[string]int{"succeeded": j, "failed": i},
			}
		}
	}
	return ps
}

// TestHelperProcess is not a test: run by the tests as a child process, it
// saves the two crash payloads in turn until it is killed.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "save-loop" {
		t.Skip("a helper process for other tests")
	}
	s, err := Open(os.Getenv(helperDirEnv), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ps := crashPayloads()
	for i := 0; ; i++ {
		if err := s.Save(ps[i%2], "fp1"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if i == 0 {
			fmt.Println("saved")
		}
	}
}

func TestProcessKilledWhileSavingLeavesACompleteState(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 30 processes")
	}
	dir := t.TempDir()
	ps := crashPayloads()
	seen := map[int]int{}
	for round := range 30 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"=save-loop", helperDirEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the first save is done, kill it at a random moment of the
		// ones that follow.
		line, err := bufio.NewReader(out).ReadString('\n')
		if line != "saved\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: helper said %q, %v", round, line, err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(40 * time.Millisecond))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var exit *exec.ExitError
		if err := cmd.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper ended with %v, not killed", round, err)
		}

		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got payload
		ok, err := s.Load(&got, "fp1")
		if !ok || err != nil {
			t.Fatalf("round %d: Load after a kill = %v, %v; files %q", round, ok, err, files(t, dir))
		}
		match := -1
		for i := range ps {
			if cmp.Equal(got, ps[i]) {
				match = i
			}
		}
		if match < 0 {
			t.Fatalf("round %d: loaded a state that is neither of those saved", round)
		}
		seen[match]++
		if names := files(t, dir); !cmp.Equal(names, []string{FileName}) {
			t.Fatalf("round %d: files = %q, want only %s", round, names, FileName)
		}
	}
	t.Logf("states found after the kills: %v", seen)
}

// runAsNonRoot, for a test that needs file permissions to hold, runs it again
// in a child process as a non-root user in a user namespace if the test
// runs as root, and reports whether it did. It skips the test if it cannot.
func runAsNonRoot(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return false
	}
	if os.Getenv(nonRootEnv) != "" {
		t.Fatal("still root in the user namespace")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), nonRootEnv+"=1", "TMPDIR="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 1000, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 1000, HostID: 0, Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Fatalf("as a non-root user: %v\n%s", err, out)
	case err != nil:
		t.Skipf("running as root, and cannot run as another user (%v): root ignores file permissions", err)
	}
	t.Logf("passed as uid 1000 in a user namespace:\n%s", out)
	return true
}
