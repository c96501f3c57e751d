package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binary is the portcullis binary the tests run, built once.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv("PORTCULLIS_FAULTS") != "1" {
		fmt.Println("the fault suite runs with PORTCULLIS_FAULTS=1 (make test-faults)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "portcullis-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "portcullis")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/portcullis")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the operator:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
