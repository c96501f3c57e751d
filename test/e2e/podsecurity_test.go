package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/policytest/psafixtures"
)

// libraryLevelLabel puts the library's Pod Security policies in force in a
// namespace.
const libraryLevelLabel = "pod-security.portcullis.io/level"

// The library's Pod Security policies, applied with kubectl apply -k as a
// cluster admin would, decide every pod of Pod Security Admission's own
// tests as the API server's built-in PSA does, level by level: the same
// pod, dry-run created in a namespace PSA enforces the level in and in one
// the library does, is admitted by both or refused by both. In Auto the
// API server runs the library as generated ValidatingAdmissionPolicies; in
// Webhook the webhook does.
func TestPodSecurityLibraryAgreesWithPSA(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	fixtures, err := psafixtures.Load()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, ctx, "", "apply", "-k", "../../config/library/pod-security/restricted"); err != nil {
		t.Fatalf("kubectl apply -k: %v\n%s", err, out)
	}
	var list admissionv1alpha1.ValidationPolicyList
	if err := env.Client.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	var library []*admissionv1alpha1.ValidationPolicy
	for i := range list.Items {
		if p := &list.Items[i]; strings.HasPrefix(p.Name, "pss-") {
			library = append(library, p)
			t.Cleanup(func() { deleteObj(t, p) })
		}
	}
	if len(library) < 19 {
		t.Fatalf("%d library policies applied, want one per PSA check (19)", len(library))
	}
	for _, p := range library {
		waitAdmissionReady(t, ctx, p)
	}
	waitWebhookRules(t, ctx, false, "pods")

	namespaces := map[string]map[psaapi.Level]string{"psa": {}, "library": {}}
	for _, level := range []psaapi.Level{psaapi.LevelBaseline, psaapi.LevelRestricted} {
		for by, labels := range map[string]map[string]string{
			"psa":     {psaapi.EnforceLevelLabel: string(level), psaapi.EnforceVersionLabel: "latest"},
			"library": {libraryLevelLabel: string(level)},
		} {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pss-" + by + "-" + string(level), Labels: labels}}
			if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			t.Cleanup(func() { deleteObj(t, ns) })
			namespaces[by][level] = ns.Name
		}
	}

	// create is a dry-run create of the pod in ns: nil when admitted.
	create := func(ctx context.Context, f psafixtures.Fixture, ns string) error {
		pod := f.Pod.DeepCopy()
		pod.Namespace = ns
		pod.Name = strings.ReplaceAll(strings.ToLower(pod.Name), "_", "-")
		return env.Client.Create(ctx, pod, client.DryRunAll)
	}
	for _, level := range []psaapi.Level{psaapi.LevelBaseline, psaapi.LevelRestricted} {
		admitted, refused := 0, 0
		for _, f := range fixtures {
			psaErr := create(ctx, f, namespaces["psa"][level])
			var libErr error
			// The library's policies reach the API server's evaluation
			// within a second of being Ready (natively) or of the webhook
			// configuration's update: a first disagreement is retried.
			for try := 0; try < 10; try++ {
				if libErr = create(ctx, f, namespaces["library"][level]); (libErr == nil) == (psaErr == nil) {
					break
				}
				time.Sleep(300 * time.Millisecond)
			}
			switch {
			case (psaErr == nil) != (libErr == nil):
				t.Errorf("%s at %s: PSA: %v; the library: %v", f.Name, level, result(psaErr), result(libErr))
			case psaErr == nil:
				admitted++
			default:
				// Refused at the same step: both by admission (403), or both
				// by the API server's validation of the pod (422).
				if pr, lr := apierrors.ReasonForError(psaErr), apierrors.ReasonForError(libErr); pr != lr {
					t.Errorf("%s at %s: refused for different reasons: PSA %s: %v; the library %s: %v", f.Name, level, pr, psaErr, lr, libErr)
				}
				refused++
			}
			if f.Level == level && f.Pass != (psaErr == nil) {
				t.Errorf("%s: PSA admits %v, its fixture says %v", f.Name, psaErr == nil, f.Pass)
			}
		}
		t.Logf("%s: %d pods, %d admitted and %d refused by both PSA and the library (%s execution)", level, len(fixtures), admitted, refused, e2eExecution)
	}
}

func result(err error) string {
	if err == nil {
		return "admitted"
	}
	return fmt.Sprintf("refused (%v)", err)
}

// The warn and audit components turn every Pod Security policy, and only
// those, to their action, built by kubectl's kustomize as a user would.
func TestPodSecurityComponents(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	abs, err := filepath.Abs("../../config/library/pod-security")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ level, component, action string }{
		{"restricted", "warn", "Warn"}, {"baseline", "audit", "Audit"},
	} {
		dir := t.TempDir()
		rel := func(p string) string {
			r, err := filepath.Rel(dir, filepath.Join(abs, p))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		k := fmt.Sprintf("resources: [%s]\ncomponents: [%s]\n", rel(tc.level), rel("components/"+tc.component))
		if err := writeFile(filepath.Join(dir, "kustomization.yaml"), k); err != nil {
			t.Fatal(err)
		}
		out, err := kubectl(t, ctx, "", "kustomize", "--load-restrictor=LoadRestrictionsNone", dir)
		if err != nil {
			t.Fatalf("kubectl kustomize: %v\n%s", err, out)
		}
		want := map[string]int{"baseline": 12, "restricted": 19}[tc.level]
		if n, m := strings.Count(out, "kind: ValidationPolicy"), strings.Count(out, "action: "+tc.action); n != want || m != want {
			t.Errorf("%s with %s: %d policies, %d with action %s; want %d", tc.level, tc.component, n, m, tc.action, want)
		}
	}
}
