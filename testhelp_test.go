package main

import (
	"os"
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
