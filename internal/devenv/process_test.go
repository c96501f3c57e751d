package devenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// TestStopGraceIsThePods: Stop gives a process what the kubelet gives the
// operator's Pod, so a fault test sees an operator that would be killed
// mid-shutdown in a cluster.
func TestStopGraceIsThePods(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		g := d.Spec.Template.Spec.TerminationGracePeriodSeconds
		if g == nil || time.Duration(*g)*time.Second != StopGrace {
			t.Fatalf("the Deployment's terminationGracePeriodSeconds is %v, StopGrace %v", g, StopGrace)
		}
		return
	}
	t.Fatal("no Deployment in config/manager/manager.yaml")
}

// TestWaitReadyNoticesExit: a process that exits before it is ready fails
// WaitReady at once, not after ReadyTimeout.
func TestWaitReadyNoticesExit(t *testing.T) {
	dir := t.TempDir()
	f, err := newFront("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.l.Close()
	p := &Process{Name: "sh", LogPath: filepath.Join(dir, "log"), binary: "/bin/sh", args: []string{"-c", "sleep 0.3; exit 3"},
		ProbeAddr: "127.0.0.1:1", front: f}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Kill() }()
	start := time.Now()
	err = p.WaitReady(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("WaitReady = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("WaitReady took %v to notice the exit", d)
	}
}
