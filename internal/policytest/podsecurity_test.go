package policytest

import (
	"context"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/policytest/psafixtures"
)

// The library's Pod Security policies (config/library/pod-security) are
// the Pod Security Standards as the API server's Pod Security Admission
// enforces them. Checked here offline on the pods of PSA's own tests,
// control by control (each policy against the PSA check its
// CheckAnnotation names) and level by level; test/e2e checks the same
// pods through the real API server.

// CheckAnnotation names the PSA check a library policy implements.
const CheckAnnotation = "pod-security.portcullis.io/check"

// LevelLabel is the namespace label that puts the library's policies in
// force: baseline or restricted.
const LevelLabel = "pod-security.portcullis.io/level"

func psaFixtures(t testing.TB) []psafixtures.Fixture {
	t.Helper()
	f, err := psafixtures.Load()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// libraryPolicies loads the ValidationPolicies of the library's levels.
func libraryPolicies(t testing.TB, levels ...string) []*admissionv1alpha1.ValidationPolicy {
	t.Helper()
	l := &loader{docs: map[string][]document{}}
	var dirs []string
	for _, level := range levels {
		dirs = append(dirs, filepath.Join("..", "..", "config", "library", "pod-security", level))
	}
	o, err := l.objects(".", dirs)
	if err != nil {
		t.Fatal(err)
	}
	return o.Validations
}

// admitter returns whether policies admit a pod in a namespace labelled
// for level, and the answer; the policies are compiled once.
func admitter(t testing.TB, policies []*admissionv1alpha1.ValidationPolicy, level string) func(*corev1.Pod) (bool, string) {
	t.Helper()
	objs := &Objects{
		Namespaces: map[string]*corev1.Namespace{"pss": {ObjectMeta: metav1.ObjectMeta{Name: "pss", Labels: map[string]string{LevelLabel: level}}}},
		Secrets:    map[string]*corev1.Secret{},
	}
	for _, p := range policies {
		objs.Validations = append(objs.Validations, p.DeepCopy())
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e, err := build(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	return func(pod *corev1.Pod) (bool, string) {
		p := pod.DeepCopy()
		p.Namespace = "pss"
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
		if err != nil {
			t.Fatal(err)
		}
		u["apiVersion"], u["kind"] = "v1", "Pod"
		r := e.admit(ctx, &AdmissionInput{Object: u}, Expect{})
		if len(r.Failures) > 0 {
			t.Fatalf("%s: %v", pod.Name, r.Failures)
		}
		return r.Got == "admitted", r.Got
	}
}

func TestPodSecurityControlsAgreeWithPSA(t *testing.T) {
	fixtures := psaFixtures(t)
	policies := libraryPolicies(t, "baseline", "restricted")
	byCheck := map[string]*admissionv1alpha1.ValidationPolicy{}
	for _, p := range policies {
		id := p.Annotations[CheckAnnotation]
		if id == "" {
			t.Errorf("ValidationPolicy %s has no %s annotation", p.Name, CheckAnnotation)
			continue
		}
		if other, dup := byCheck[id]; dup {
			t.Errorf("ValidationPolicies %s and %s both implement %s", other.Name, p.Name, id)
		}
		byCheck[id] = p
	}
	for _, check := range psapolicy.DefaultChecks() {
		t.Run(string(check.ID), func(t *testing.T) {
			p, ok := byCheck[string(check.ID)]
			if !ok {
				t.Fatalf("no library policy implements PSA check %s (level %s)", check.ID, check.Level)
			}
			latest := check.Versions[len(check.Versions)-1]
			admits := admitter(t, []*admissionv1alpha1.ValidationPolicy{p}, "restricted")
			for _, f := range fixtures {
				want := latest.CheckPod(&f.Pod.ObjectMeta, &f.Pod.Spec)
				got, answer := admits(f.Pod)
				if got != want.Allowed {
					t.Errorf("%s: %s admits %v (%s); PSA's %s allows %v (%s: %s)", f.Name, p.Name, got, answer, check.ID, want.Allowed, want.ForbiddenReason, want.ForbiddenDetail)
				}
			}
		})
	}
}

func TestPodSecurityLevelsAgreeWithPSA(t *testing.T) {
	fixtures := psaFixtures(t)
	evaluator, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range []psaapi.Level{psaapi.LevelBaseline, psaapi.LevelRestricted} {
		t.Run(string(level), func(t *testing.T) {
			policies := libraryPolicies(t, "baseline")
			if level == psaapi.LevelRestricted {
				policies = libraryPolicies(t, "baseline", "restricted")
			}
			admits := admitter(t, policies, string(level))
			allowed, denied := 0, 0
			for _, f := range fixtures {
				want := psapolicy.AggregateCheckResults(evaluator.EvaluatePod(psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()}, &f.Pod.ObjectMeta, &f.Pod.Spec))
				got, answer := admits(f.Pod)
				if got != want.Allowed {
					t.Errorf("%s: the library admits %v (%s); PSA %s allows %v (%s)", f.Name, got, answer, level, want.Allowed, want.ForbiddenReason())
				}
				if f.Level == level && f.Pass != want.Allowed {
					t.Errorf("%s: PSA allows %v, its fixture says %v", f.Name, want.Allowed, f.Pass)
				}
				if want.Allowed {
					allowed++
				} else {
					denied++
				}
			}
			t.Logf("%s: %d pods, %d allowed and %d denied by both", level, len(fixtures), allowed, denied)
		})
	}
}
