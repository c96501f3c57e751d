// Package psafixtures reads the pods of Pod Security Admission's own tests
// (k8s.io/pod-security-admission's test/testdata, from the module cache),
// the corpus the library's Pod Security policies are compared with PSA on,
// offline and through the real API server.
package psafixtures

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"sigs.k8s.io/yaml"
)

// Fixture is one pod of PSA's fixtures for the newest policy version.
type Fixture struct {
	// Name is level/pass|fail/file.
	Name string
	// Level is the level whose fixtures it is, and Pass whether they say
	// that level allows it.
	Level psaapi.Level
	Pass  bool
	Pod   *corev1.Pod
}

// Load reads the fixtures of the baseline and restricted levels for the
// newest policy version they have: what "latest" enforces.
func Load() ([]Fixture, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/pod-security-admission").Output()
	if err != nil {
		return nil, fmt.Errorf("finding k8s.io/pod-security-admission: %w", err)
	}
	root := filepath.Join(strings.TrimSpace(string(out)), "test", "testdata")
	dirs, err := os.ReadDir(filepath.Join(root, string(psaapi.LevelBaseline)))
	if err != nil {
		return nil, err
	}
	var newest psaapi.Version
	for _, d := range dirs {
		if v, err := psaapi.ParseVersion(d.Name()); err == nil && newest.Older(v) {
			newest = v
		}
	}
	var fixtures []Fixture
	for _, level := range []psaapi.Level{psaapi.LevelBaseline, psaapi.LevelRestricted} {
		for _, result := range []string{"pass", "fail"} {
			dir := filepath.Join(root, string(level), newest.String(), result)
			files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
			if err != nil || len(files) == 0 {
				return nil, fmt.Errorf("no PSA fixtures in %s: %v", dir, err)
			}
			sort.Strings(files)
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return nil, err
				}
				pod := &corev1.Pod{}
				if err := yaml.UnmarshalStrict(data, pod); err != nil {
					return nil, fmt.Errorf("%s: %w", f, err)
				}
				defaultVolumes(pod)
				fixtures = append(fixtures, Fixture{Name: string(level) + "/" + result + "/" + filepath.Base(f), Level: level, Pass: result == "pass", Pod: pod})
			}
		}
	}
	return fixtures, nil
}

// defaultVolumes makes a volume without a source an emptyDir, as the API
// server's defaulting does before admission (PSA's fixtures rely on it:
// "implicit empty dir").
func defaultVolumes(pod *corev1.Pod) {
	for i := range pod.Spec.Volumes {
		if reflect.DeepEqual(pod.Spec.Volumes[i].VolumeSource, corev1.VolumeSource{}) {
			pod.Spec.Volumes[i].EmptyDir = &corev1.EmptyDirVolumeSource{}
		}
	}
}
