package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// config/default renders with kustomize (kubectl's built-in) and passes a
// server-side dry-run apply: every object is valid for the API server.
func TestConfigDefaultServerSideDryRun(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "config", "default")
	out, stderr, err := env.ControlPlane.Kubectl(ctx, "", "apply", "-k", dir, "--server-side", "--dry-run=server", "--force-conflicts")
	if err != nil {
		t.Fatalf("dry-run apply of config/default: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"deployment.apps/portcullis-controller-manager serverside-applied (server dry run)",
		"service/portcullis-webhook serverside-applied (server dry run)",
		"poddisruptionbudget.policy/portcullis-controller-manager serverside-applied (server dry run)",
		"clusterrole.rbac.authorization.k8s.io/portcullis-manager-role serverside-applied (server dry run)",
		"customresourcedefinition.apiextensions.k8s.io/accesspolicies.authorization.portcullis.io serverside-applied (server dry run)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
}

// The optional [ADMISSION-CALLERS] patch of config/default, used as its
// comment says from an overlay, adds the flag to the operator's arguments.
func TestConfigDefaultAdmissionCallersOption(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	_, file, _, _ := runtime.Caller(0)
	def := filepath.Join(filepath.Dir(file), "..", "..", "config", "default")
	overlay := t.TempDir()
	rel, err := filepath.Rel(overlay, def)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := os.ReadFile(filepath.Join(def, "manager_admission_callers_patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(overlay, "manager_admission_callers_patch.yaml"), string(patch)); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(overlay, "kustomization.yaml"), "resources:\n- "+rel+"\npatches:\n- path: manager_admission_callers_patch.yaml\n  target:\n    kind: Deployment\n"); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := env.ControlPlane.Kubectl(ctx, "", "kustomize", overlay)
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "- --authenticate-admission-callers") || !strings.Contains(out, "- --leader-elect") {
		t.Fatalf("the rendered Deployment lacks --authenticate-admission-callers:\n%s", out)
	}
}
