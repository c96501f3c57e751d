package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testSuite is a suite of one MutationPolicy and two cases, the second
// expecting what the policy does when broken is set.
func testSuite(broken bool) string {
	want := "yes"
	if broken {
		want = "no"
	}
	return `apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: stamp}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
  mutations:
  - setLabels: {stamped: "yes"}
---
apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: stamp}
cases:
- name: admitted
  admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}
  expect: {allowed: true}
- name: stamped
  admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}
  expect: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default, labels: {stamped: "` + want + `"}}}}
`
}

// testCommandDir, set, makes this test binary the portcullis command,
// run as "portcullis test DIR": TestTestCommandExits runs it so.
const testCommandDir = "PORTCULLIS_TEST_COMMAND_DIR"

// portcullis test exits non-zero when a case fails or a suite does not
// load, as make test needs of its first step, and zero when every case
// passes: the exit status of the binary, through main.
func TestTestCommandExits(t *testing.T) {
	if dir := os.Getenv(testCommandDir); dir != "" {
		os.Args = []string{"portcullis", "test", dir}
		main()
		os.Exit(0)
	}
	for _, tc := range []struct {
		name, suite string
		code        int
		stderr      string
	}{
		{"passes", testSuite(false), 0, ""},
		{"a case fails", testSuite(true), 1, "error: 1 of 2 cases failed\n"},
		{"does not load", strings.Replace(testSuite(false), "setLabels:", "setLabel:", 1), 1, `unknown field "spec.mutations[0].setLabel"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "suite.yaml"), []byte(tc.suite), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestTestCommandExits$")
			cmd.Env = append(os.Environ(), testCommandDir+"="+dir)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			switch {
			case errors.As(err, &exit):
				code = exit.ExitCode()
			case err != nil:
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, want %d; stderr %q, want it to contain %q; stdout:\n%s", code, tc.code, stderr.String(), tc.stderr, stdout.String())
			}
			if tc.code == 0 && !strings.Contains(stdout.String(), "2 passed, 0 failed") {
				t.Errorf("stdout:\n%s", stdout.String())
			}
		})
	}
}
