package e2e

import (
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
