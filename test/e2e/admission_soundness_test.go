package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
	"github.com/portcullis-io/portcullis/internal/certs"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// The adversarial CEL corpus through the real API server, side by side
// with the API server's own ValidatingAdmissionPolicy: the same pod of 128
// containers of 128 mounts, created once in a namespace a
// ValidatingAdmissionPolicy guards and once in one a ValidationPolicy
// guards, each expression in a policy of its own. Both must admit or
// deny alike, with the same message (the cost-limit errors included), and
// /authenticate must keep answering meanwhile.
func TestAdmissionCELAsTheAPIServer(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	vapNS, oursNS := "e2e-adv-vap", "e2e-adv-ours"
	ensureNamespace(t, ctx, vapNS)
	ensureNamespace(t, ctx, oursNS)
	podRule := admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
	exprs := admissiontest.Adversarial
	// A last pair, "false" for the label adv=sentinel: once the API server
	// refuses a pod by it, it has every built-in policy created before.
	labels := make([]string, 0, len(exprs)+1)
	for i := range exprs {
		labels = append(labels, fmt.Sprint(i))
	}
	labels = append(labels, "sentinel")
	for i, l := range labels {
		e := "false"
		if i < len(exprs) {
			e = exprs[i]
		}
		label := map[string]string{"adv": l}
		vap := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-adv-" + l},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionregistrationv1.Fail),
				MatchConstraints: &admissionregistrationv1.MatchResources{
					ResourceRules:  []admissionregistrationv1.NamedRuleWithOperations{podRule},
					ObjectSelector: &metav1.LabelSelector{MatchLabels: label},
				},
				// Forbidden, as in a ValidationPolicy's native form: a
				// failed validation is 403 either way, and one that could
				// not be evaluated 422.
				Validations: []admissionregistrationv1.Validation{{Expression: e, Reason: ptr.To(metav1.StatusReasonForbidden)}},
			},
		}
		binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: vap.Name},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        vap.Name,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				MatchResources: &admissionregistrationv1.MatchResources{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": vapNS}},
				},
			},
		}
		ours := &admissionv1alpha1.ValidationPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: vap.Name},
			Spec: admissionv1alpha1.ValidationPolicySpec{
				Match: admissionv1alpha1.Match{
					Resources:         []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}},
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": oursNS}},
					ObjectSelector:    &metav1.LabelSelector{MatchLabels: label},
				},
				Validations: []admissionv1alpha1.Validation{{Expression: e}},
			},
		}
		for _, obj := range []client.Object{vap, binding, ours} {
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatalf("%s %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
			}
			t.Cleanup(func() { deleteObj(t, obj) })
		}
		waitAdmissionReady(t, ctx, ours)
	}
	waitWebhookRules(t, ctx, false, "pods")
	eventually(t, ctx, "the API server enforces the ValidatingAdmissionPolicies", func(ctx context.Context) (bool, error) {
		probe := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "sentinel", "namespace": vapNS, "labels": map[string]any{"adv": "sentinel"}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "registry.example/app:1"}}},
		}}
		err := env.Client.Create(ctx, probe, client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), "e2e-adv-sentinel"), err
	})

	// /authenticate, called directly as the API server calls it, meanwhile.
	_, token := user(t, ctx, "adv-prompt")
	ca := certs.ReadDir(env.CertDir()).CA
	stop := make(chan struct{})
	var answered, failed atomic.Int64
	var slowest atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			u, err := tokenReview(ctx, ca, env.WebhookURL, token, env.APIServerClient)
			d := time.Since(start)
			if err != nil || u != "adv-prompt" {
				failed.Add(1)
			} else {
				answered.Add(1)
			}
			if int64(d) > slowest.Load() {
				slowest.Store(int64(d))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	create := func(ns string, i int) (time.Duration, error) {
		pod := admissiontest.MountsPod(128, 128)
		meta := pod["metadata"].(map[string]any)
		meta["namespace"] = ns
		meta["name"] = fmt.Sprintf("adv-%02d-%s", i, strings.Repeat("a", 200))
		meta["labels"].(map[string]any)["adv"] = fmt.Sprint(i)
		u := &unstructured.Unstructured{Object: pod}
		start := time.Now()
		err := env.Client.Create(ctx, u)
		if err == nil {
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
		}
		return time.Since(start), err
	}
	denied := 0
	for i, e := range exprs {
		vd, verr := create(vapNS, i)
		od, oerr := create(oursNS, i)
		switch {
		case (verr == nil) != (oerr == nil):
			t.Errorf("%s: ValidatingAdmissionPolicy %v, Portcullis %v", e, verr, oerr)
		case verr != nil:
			denied++
			want := verr.Error()
			if _, after, ok := strings.Cut(want, "denied request: "); ok {
				want = after
			}
			if !strings.Contains(oerr.Error(), want) {
				t.Errorf("%s:\n  ValidatingAdmissionPolicy: %v\n  Portcullis:                %v", e, verr, oerr)
			}
			if vc, oc := status(verr), status(oerr); vc != oc || apierrors.ReasonForError(verr) != apierrors.ReasonForError(oerr) {
				t.Errorf("%s: ValidatingAdmissionPolicy %d %s, Portcullis %d %s", e, vc, apierrors.ReasonForError(verr), oc, apierrors.ReasonForError(oerr))
			}
		}
		t.Logf("%-100.100s VAP %v, Portcullis %v, denied: %v", e, vd.Round(time.Millisecond), od.Round(time.Millisecond), verr != nil)
	}
	close(stop)
	wg.Wait()
	if denied < 5 {
		t.Errorf("%d of %d expressions denied the pod: the corpus does not reach the limits", denied, len(exprs))
	}
	if failed.Load() > 0 || answered.Load() == 0 {
		t.Errorf("/authenticate meanwhile: %d answered, %d failed", answered.Load(), failed.Load())
	}
	t.Logf("/authenticate meanwhile: %d answered, slowest %v", answered.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
}

// One MutationPolicy that cannot be applied does not drop the others:
// under Ignore it is skipped with a warning and the others' changes are
// stored; under Fail the request is refused naming it. A policy that reads
// what a later one writes applies, and when a built-in
// MutatingAdmissionPolicy changes the object after the webhook, the API
// server's reinvocation of the webhook changes nothing (the audit log
// records the second round as not mutated).
func TestMutationFailuresAndReinvocation(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	ns := "e2e-mut-soundness"
	ensureNamespace(t, ctx, ns)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-sound-remove-missing}
spec:
  failurePolicy: Ignore
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: `+ns+`}}
  mutations:
  - jsonPatch: '[{"op":"remove","path":"/data/missing"}]'
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-sound-copy-tier}
spec:
  order: 1
  failurePolicy: Ignore   # it reads what a later policy writes: skipped on the first pass
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: `+ns+`}}
  mutations:
  - jsonPatch: '[{"op":"copy","from":"/metadata/labels/tier","path":"/metadata/annotations/tier"}]'
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-sound-tier}
spec:
  order: 2
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: `+ns+`}}
  mutations:
  - setLabels: {tier: web}
`)
	// After the webhook, a built-in policy writes what it sees of the
	// webhook's label: its change makes the API server call the webhook
	// again.
	mapPolicy := `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: e2e-sound-seen}
spec:
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}]
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{metadata: Object.metadata{annotations: {"seen": object.metadata.?labels[?"tier"].orValue("none")}}}'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: e2e-sound-seen}
spec:
  policyName: e2e-sound-seen
  matchResources: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ` + ns + `}}}
`
	if _, stderr, err := kubectlApplyStdin(t, ctx, "", mapPolicy); err != nil {
		t.Fatalf("MutatingAdmissionPolicy: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { _, _, _ = kubectlFile(t, context.Background(), "", "delete", mapPolicy, "--ignore-not-found") })
	waitWebhookRules(t, ctx, true, "configmaps")

	var stored corev1.ConfigMap
	var stderr string
	eventually(t, ctx, "a ConfigMap is mutated by every policy that applies, and by the built-in after them", func(ctx context.Context) (bool, error) {
		name := fmt.Sprintf("cm-%d", time.Now().UnixNano())
		var err error
		_, stderr, err = kubectlApplyStdin(t, ctx, "", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "+name+", namespace: "+ns+"}\ndata: {a: b}\n")
		if err != nil {
			return false, err
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &stored); err != nil {
			return false, err
		}
		return stored.Annotations["seen"] == "web", fmt.Errorf("annotations %v", stored.Annotations)
	})
	if stored.Labels["tier"] != "web" || stored.Annotations["tier"] != "web" {
		t.Errorf("stored: labels %v, annotations %v; want tier set, and copied by the policy before it", stored.Labels, stored.Annotations)
	}
	if _, ok := stored.Data["missing"]; ok || !strings.Contains(stderr, `"e2e-sound-remove-missing" was skipped (failurePolicy Ignore)`) {
		t.Errorf("the failing policy under Ignore: data %v, kubectl said %q", stored.Data, stderr)
	}
	eventually(t, ctx, "the audit log records the webhook's second round, with no change", func(ctx context.Context) (bool, error) {
		return auditLogHas(`"objectRef":{"resource":"configmaps","namespace":"`+ns+`","name":"`+stored.Name+`"`, `mutation.webhook.admission.k8s.io/round_1_index_`, `\"webhook\":\"mutate.portcullis.io\",\"mutated\":false`)
	})

	// Under Fail, the failing policy refuses the request, naming itself.
	var failing admissionv1alpha1.MutationPolicy
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "e2e-sound-remove-missing"}, &failing); err != nil {
		t.Fatal(err)
	}
	failing.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
	if err := env.Client.Update(ctx, &failing); err != nil {
		t.Fatal(err)
	}
	waitAdmissionReady(t, ctx, &failing)
	eventually(t, ctx, "under Fail, the request is refused naming the policy", func(ctx context.Context) (bool, error) {
		_, stderr, err := kubectlApplyStdin(t, ctx, "", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: refused, namespace: "+ns+"}\ndata: {a: b}\n")
		return err != nil && strings.Contains(stderr, `"e2e-sound-remove-missing" could not be applied (failurePolicy Fail)`), fmt.Errorf("%v: %s", err, stderr)
	})
}

// A skipped MutationPolicy is skipped through the real API server, in
// Webhook mode, where the webhook's answer is decoded by the API server:
// an Ignore policy whose merge patch writes a string where the Pod schema
// has a number used to fail the whole request (the API server's decode of
// the patched pod is an internal error no failure policy covers), and an
// Ignore policy that never settles (an unguarded append) was reported
// skipped while its three appends were stored. Now both are skipped with
// a warning and the other policy's label is stored on the pod.
func TestSkippedMutationsAreSkipped(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	webhookExecution(t, ctx)
	ns := "e2e-mut-skipped"
	ensureNamespace(t, ctx, ns)
	match := `
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ` + ns + `}}`
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-skipped-grace}
spec:
  failurePolicy: Ignore`+match+`
  mutations:
  - mergePatch: {spec: {terminationGracePeriodSeconds: "30"}}
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-skipped-sidecar}
spec:
  order: 1
  failurePolicy: Ignore`+match+`
  mutations:
  - jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/spec/containers/-", value: Object.spec.containers{name: "sidecar-" + string(size(object.spec.containers)), image: "registry.example/proxy:1"}}]'
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-skipped-good}
spec:
  order: 2`+match+`
  mutations:
  - setLabels: {good: "yes"}
`)
	waitWebhookRules(t, ctx, true, "pods")

	var stored corev1.Pod
	var stderr string
	eventually(t, ctx, "a pod is created with the good policy's label", func(ctx context.Context) (bool, error) {
		name := fmt.Sprintf("pod-%d", time.Now().UnixNano())
		var err error
		_, stderr, err = kubectlApplyStdin(t, ctx, "", "apiVersion: v1\nkind: Pod\nmetadata: {name: "+name+", namespace: "+ns+"}\nspec: {containers: [{name: app, image: registry.example/app:1}]}\n")
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, stderr)
		}
		t.Cleanup(func() { deleteObj(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}) })
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &stored); err != nil {
			return false, err
		}
		return stored.Labels["good"] == "yes", fmt.Errorf("labels %v", stored.Labels)
	})
	for _, p := range []string{"e2e-skipped-grace", "e2e-skipped-sidecar"} {
		if !strings.Contains(stderr, `"`+p+`" was skipped (failurePolicy Ignore)`) {
			t.Errorf("kubectl said %q, want %s skipped", stderr, p)
		}
	}
	if !strings.Contains(stderr, "terminationGracePeriodSeconds") {
		t.Errorf("kubectl said %q, want the field named", stderr)
	}
	if len(stored.Spec.Containers) != 1 {
		t.Errorf("containers %v: the skipped sidecar policy's appends were kept", stored.Spec.Containers)
	}
}

// The exemption of Portcullis's own kinds from policy admission names
// portcullis.io and its subdomains, not every group ending so: a policy on
// a group named notportcullis.io is enforced.
func TestPolicyOnNotPortcullisGroupIsEnforced(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.notportcullis.io}
spec:
  group: notportcullis.io
  scope: Cluster
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
	if _, stderr, err := kubectlApplyStdin(t, ctx, "", crd); err != nil {
		t.Fatalf("CRD: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { _, _, _ = kubectlFile(t, context.Background(), "", "delete", crd, "--ignore-not-found") })
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-no-gadgets}
spec:
  match:
    resources: [{apiGroups: [notportcullis.io], apiVersions: ["*"], resources: [gadgets], operations: [CREATE]}]
  validations:
  - expression: "false"
    message: "no gadgets"
`)
	waitWebhookRules(t, ctx, false, "gadgets")
	eventually(t, ctx, "a Gadget is refused by the policy", func(ctx context.Context) (bool, error) {
		_, stderr, err := kubectlApplyStdin(t, ctx, "", "apiVersion: notportcullis.io/v1\nkind: Gadget\nmetadata: {name: g1}\n")
		if err == nil {
			_, _, _ = env.ControlPlane.Kubectl(ctx, "", "delete", "gadgets.notportcullis.io", "g1", "--ignore-not-found")
		}
		return err != nil && strings.Contains(stderr, "no gadgets"), fmt.Errorf("%v: %s", err, stderr)
	})
}

// A policy that fails to compile at run time (written while the
// operator's own validation was away) is kept, not dropped: it reports
// why in its status, the webhook rules still send what it matches, and
// its failure policy decides: a broken Deny policy refuses what it
// matches under Fail and lets it through under Ignore, having evaluated
// it.
func TestBrokenPoliciesApplyTheirFailurePolicy(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	e, err := devenv.Start(ctx, devenv.Options{StateDir: t.TempDir(), WithoutControllerManager: true, DecisionLog: decisionLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	for _, ns := range []string{"broken-fail", "broken-ignore"} {
		if _, stderr, err := e.ControlPlane.Kubectl(ctx, "", "create", "namespace", ns); err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
	}
	// Past the operator's validation of its kinds.
	if err := e.Primary().Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: app.OwnKindsWebhookConfiguration}}); err != nil {
		t.Fatal(err)
	}
	broken := func(name, ns, failurePolicy string) string {
		return `apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: ` + name + `}
spec:
  failurePolicy: ` + failurePolicy + `
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ` + ns + `}}
  validations:
  - expression: "object.data.size() >"
`
	}
	if err := e.Apply(ctx, []byte(broken("broken-fail", "broken-fail", "Fail")+"---\n"+broken("broken-ignore", "broken-ignore", "Ignore"))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.StartReplica(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"broken-fail", "broken-ignore"} {
		eventually(t, ctx, name+" reports why and keeps its failure policy", func(ctx context.Context) (bool, error) {
			var p admissionv1alpha1.ValidationPolicy
			if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
				return false, err
			}
			for _, c := range p.Status.Conditions {
				if c.Type == admissionv1alpha1.ConditionReady && c.ObservedGeneration == p.Generation {
					return c.Status == metav1.ConditionFalse && c.Reason == admissionv1alpha1.ReasonInvalid &&
						strings.Contains(c.Message, "spec.validations[0].expression") && strings.Contains(c.Message, "failurePolicy"), fmt.Errorf("%s: %s", c.Reason, c.Message)
				}
			}
			return false, nil
		})
	}
	create := func(ns string) (string, error) {
		_, stderr, err := e.ControlPlane.Kubectl(ctx, "", "create", "configmap", fmt.Sprintf("cm-%d", time.Now().UnixNano()), "-n", ns, "--from-literal=a=b")
		return stderr, err
	}
	eventually(t, ctx, "the broken Deny policy under Fail refuses what it matches", func(ctx context.Context) (bool, error) {
		stderr, err := create("broken-fail")
		// A validation that does not compile is an error whenever it is
		// evaluated, as in the API server.
		return err != nil && strings.Contains(stderr, `"broken-fail"`) && strings.Contains(stderr, "compilation error"), fmt.Errorf("%v: %s", err, stderr)
	})
	// Admitted, as it would be with no webhook at all; so the webhook's
	// decision must show it evaluated the policy and skipped its error.
	// A ValidationPolicy skipped under Ignore answers no warning, as a
	// ValidatingAdmissionPolicy does not: its decision line is the record.
	eventually(t, ctx, "the broken Deny policy under Ignore is evaluated and skipped", func(ctx context.Context) (bool, error) {
		mark := len(operatorLog.String())
		stderr, err := create("broken-ignore")
		if err != nil {
			t.Fatalf("the broken policy under Ignore refused: %v: %s", err, stderr)
		}
		d, ok := skippedBy(operatorLog.String()[mark:], "broken-ignore", "ValidationPolicy/broken-ignore (failurePolicy Ignore)")
		return ok && strings.Contains(d, "compilation error"), fmt.Errorf("no validate decision in broken-ignore skipping the policy (%s)", d)
	})
}

// skippedBy finds the validate decision in namespace ns that admitted a
// request with a policy error starting with prefix, and returns that
// error.
func skippedBy(log, ns, prefix string) (string, bool) {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"msg":"decision"`) {
			continue
		}
		var e struct {
			Phase        string   `json:"phase"`
			Decision     string   `json:"decision"`
			Namespace    string   `json:"namespace"`
			PolicyErrors []string `json:"policyErrors"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Phase != "validate" || e.Namespace != ns || e.Decision != "allowed" {
			continue
		}
		for _, pe := range e.PolicyErrors {
			if strings.HasPrefix(pe, prefix) {
				return pe, true
			}
		}
	}
	return "", false
}
