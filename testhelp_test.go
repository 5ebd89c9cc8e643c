package main

import (
	"os"
	"os/exec"
	"testing"
)

// inCI reports whether the tests run under CI, where a test that cannot run
// for lack of root, a tool or namespace support must fail, not skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipUnlessCI skips t with the reason, or fails it under CI=true.
func skipUnlessCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("CI=true: cannot skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// startCommand starts cmd and returns a channel that delivers its exit
// status once. A cleanup kills it and waits for it if it is still running
// when the test ends, so no test leaves a process behind.
func startCommand(t testing.TB, cmd *exec.Cmd) <-chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // os.ErrProcessDone once it has exited
		<-exited
	})
	return done
}
