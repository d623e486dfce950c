package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// NeedTool returns the path of the program name, found on PATH. When it is missing the test
// cannot run: it is skipped with a message starting "needs tool <name>:", except where the
// environment variable CI is set, where it fails, because there a skip would hide a missing
// install step (hack/testsum names every such skip).
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		MissingTool(t, name, err)
	}
	return path
}

// MissingTool ends the test as NeedTool does, for a caller that learnt from err that the program
// name is not installed.
func MissingTool(t testing.TB, name string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("needs tool %s: %v (CI is set: install it rather than skip)", name, err)
		return
	}
	t.Skipf("needs tool %s: %v", name, err)
}
