package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
)

// e2eExecution is the WebhookBundle's spec.admission.execution for this
// run of the suite (PORTCULLIS_E2E_EXECUTION): the admission tests pass
// with either, as results are the same whoever evaluates a policy.
var e2eExecution = func() operatorv1alpha1.AdmissionExecution {
	if v := os.Getenv("PORTCULLIS_E2E_EXECUTION"); v != "" {
		return operatorv1alpha1.AdmissionExecution(v)
	}
	return operatorv1alpha1.ExecutionAuto
}()

// setExecution sets the bundle's spec.admission.execution.
func setExecution(ctx context.Context, mode operatorv1alpha1.AdmissionExecution) error {
	b := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
	return env.Client.Patch(ctx, b, client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"spec":{"admission":{"execution":%q}}}`, mode))))
}

// execution is a policy's status.execution once settled for its
// generation (not handing over), nil before.
func execution(st admissionv1alpha1.PolicyStatus, generation int64) *admissionv1alpha1.ExecutionStatus {
	x := st.Execution
	if x == nil || x.ObservedGeneration != generation || x.Reason == admissionv1alpha1.ReasonHandingOver {
		return nil
	}
	return x
}

// waitExecution waits until the policy's execution is settled in mode.
func waitExecution(t *testing.T, ctx context.Context, obj client.Object, mode admissionv1alpha1.ExecutionMode) *admissionv1alpha1.ExecutionStatus {
	t.Helper()
	var got *admissionv1alpha1.ExecutionStatus
	eventually(t, ctx, fmt.Sprintf("%s executed by %s", obj.GetName(), mode), func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err
		}
		got = execution(policyStatus(obj), obj.GetGeneration())
		return got != nil && got.Mode == mode, fmt.Errorf("execution %+v", got)
	})
	return got
}

func policyStatus(obj client.Object) admissionv1alpha1.PolicyStatus {
	switch o := obj.(type) {
	case *admissionv1alpha1.MutationPolicy:
		return o.Status
	case *admissionv1alpha1.ValidationPolicy:
		return o.Status
	}
	return admissionv1alpha1.PolicyStatus{}
}

// With Auto, the API server evaluates what it can express itself: the
// operator generates the ValidatingAdmissionPolicy, MutatingAdmissionPolicy
// and bindings, restores them when edited or deleted, and keeps on the
// webhook, saying why, what has no native form; execution Webhook takes
// every policy back.
func TestNativeExecution(t *testing.T) {
	if e2eExecution != operatorv1alpha1.ExecutionAuto {
		t.Skip("the suite runs with execution", e2eExecution)
	}
	ctx := ctxFor(t, 4*time.Minute)
	kc := podWriter(t, ctx, "nat")
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-native-deny}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE, UPDATE]}]
    objectSelector: {matchLabels: {e2e-native: "yes"}}
  validations:
  - expression: "!object.metadata.name.startsWith('bad-')"
    message: "pods named bad- are refused"
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-native-label}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
  mutations:
  - setLabels: {stamped: "native"}
`)
	vp := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-native-deny"}}
	mp := &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-native-label"}}
	x := waitExecution(t, ctx, vp, admissionv1alpha1.ExecutionNative)
	if !strings.Contains(x.Message, "e2e-native-deny.validate.portcullis.io") {
		t.Errorf("status.execution does not name the generated policy: %+v", x)
	}
	waitExecution(t, ctx, mp, admissionv1alpha1.ExecutionNative)

	refused := func(name string) (string, bool) {
		_, stderr, err := kubectlApplyStdin(t, ctx, kc, strings.Replace(podManifest(name, ""), "metadata: {name: "+name+",", "metadata: {labels: {e2e-native: \"yes\"}, name: "+name+",", 1))
		if err == nil {
			deleteObj(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: name}})
		}
		return stderr, err != nil
	}
	// The API server itself refuses: its message names the generated policy.
	if stderr, ok := refused("bad-native"); !ok || !strings.Contains(stderr, "pods named bad- are refused") ||
		!strings.Contains(stderr, "ValidatingAdmissionPolicy 'e2e-native-deny.validate.portcullis.io'") {
		t.Fatalf("refused %v: %s", ok, stderr)
	}
	// And the API server mutates.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "e2e-native-cm"}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, cm) })
	if cm.Labels["stamped"] != "native" {
		t.Fatalf("the stored ConfigMap has labels %v", cm.Labels)
	}

	// An edit of the generated policy is undone, whole.
	var vap admissionregistrationv1.ValidatingAdmissionPolicy
	if err := env.Client.Get(ctx, clientKey("e2e-native-deny.validate.portcullis.io"), &vap); err != nil {
		t.Fatal(err)
	}
	want := vap.Spec.DeepCopy()
	vap.Spec.Validations[0].Expression = "true"
	vap.Spec.MatchConditions = append(vap.Spec.MatchConditions, admissionregistrationv1.MatchCondition{Name: "sneaked-in", Expression: "false"})
	if err := env.Client.Update(ctx, &vap); err != nil {
		t.Fatal(err)
	}
	restored := func(what string) {
		t.Helper()
		eventually(t, ctx, what, func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, clientKey(vap.Name), &vap); err != nil {
				return false, err
			}
			return vap.Spec.Validations[0].Expression == want.Validations[0].Expression && len(vap.Spec.MatchConditions) == len(want.MatchConditions),
				fmt.Errorf("validations %v, conditions %v", vap.Spec.Validations, vap.Spec.MatchConditions)
		})
	}
	restored("the edited ValidatingAdmissionPolicy is restored")
	edit(t, ctx, &vap, func() { vap.Spec.Validations[0].Expression = "true" })
	restored("the ValidatingAdmissionPolicy edited again is restored")
	// So is each edit of the binding, the second as the first: the restore
	// leaves the API server recording who writes it. (A binding has no
	// status: no write of the API server's own would show the next edit.)
	for i := range 2 {
		binding := admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: vap.Name}}
		var actions []admissionregistrationv1.ValidationAction
		edit(t, ctx, &binding, func() {
			actions = binding.Spec.ValidationActions
			binding.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit}
		})
		eventually(t, ctx, fmt.Sprintf("the binding edited (%d) is restored", i+1), func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, clientKey(vap.Name), &binding); err != nil {
				return false, err
			}
			return slices.Equal(binding.Spec.ValidationActions, actions), fmt.Errorf("validationActions %v", binding.Spec.ValidationActions)
		})
	}
	// A deleted policy and binding are recreated.
	if err := env.Client.Delete(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: vap.Name}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: vap.Name}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the deleted policy and binding are recreated", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, clientKey(vap.Name), &admissionregistrationv1.ValidatingAdmissionPolicy{}); err != nil {
			return false, err
		}
		err := env.Client.Get(ctx, clientKey(vap.Name), &admissionregistrationv1.ValidatingAdmissionPolicyBinding{})
		return err == nil, err
	})
	eventually(t, ctx, "the policy refuses again", func(ctx context.Context) (bool, error) {
		stderr, ok := refused("bad-again")
		return ok, fmt.Errorf("%s", stderr)
	})

	// What the API server cannot express stays on the webhook, which says
	// so naming the feature, and still applies it.
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-native-merge}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [secrets], operations: [CREATE]}]
  mutations:
  - mergePatch: {metadata: {annotations: {merged: "yes"}}}
`)
	merge := &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-native-merge"}}
	x = waitExecution(t, ctx, merge, admissionv1alpha1.ExecutionWebhook)
	if x.Reason != admissionv1alpha1.ReasonNotExpressible || !strings.Contains(x.Message, "spec.mutations[0].mergePatch") {
		t.Errorf("status.execution %+v", x)
	}
	waitWebhookRules(t, ctx, true, "secrets")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "e2e-native-secret"}}
	if err := env.Client.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, sec) })
	if sec.Annotations["merged"] != "yes" {
		t.Fatalf("the webhook did not apply the merge patch: %v", sec.Annotations)
	}

	// execution: Webhook takes every policy back: the generated objects
	// go, and the webhook refuses with its own message.
	if err := setExecution(ctx, operatorv1alpha1.ExecutionWebhook); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := setExecution(context.Background(), e2eExecution); err != nil {
			t.Error(err)
		}
	})
	if x := waitExecution(t, ctx, vp, admissionv1alpha1.ExecutionWebhook); x.Reason != admissionv1alpha1.ReasonRequested {
		t.Errorf("status.execution %+v", x)
	}
	eventually(t, ctx, "the generated objects are deleted", func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, clientKey(vap.Name), &admissionregistrationv1.ValidatingAdmissionPolicy{})
		return apierrors.IsNotFound(err), err
	})
	eventually(t, ctx, "the webhook refuses", func(ctx context.Context) (bool, error) {
		stderr, ok := refused("bad-webhook")
		return ok && strings.Contains(stderr, `admission webhook "validate.portcullis.io" denied the request`) && strings.Contains(stderr, "pods named bad- are refused"),
			fmt.Errorf("%s", stderr)
	})
}

// A match condition that reads namespaceObject and a JSON patch stay on
// the webhook, saying so: the API server evaluates match conditions
// without the namespace (the condition would fail, denying every
// ConfigMap under Fail), and decodes a patched object strictly, rejecting
// a field its kind does not have whatever the failurePolicy. On the
// webhook the condition sees the namespace and such a field is dropped.
func TestNativeLeavesNamespaceConditionsAndJSONPatchesToTheWebhook(t *testing.T) {
	if e2eExecution != operatorv1alpha1.ExecutionAuto {
		t.Skip("the suite runs with execution", e2eExecution)
	}
	ctx := ctxFor(t, 2*time.Minute)
	ensureNamespace(t, ctx, admissionNS)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-native-nscond}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    conditions: [{name: here, expression: "namespaceObject.metadata.name == '`+admissionNS+`'"}]
  validations:
  - expression: "!object.metadata.name.startsWith('bad-')"
    message: "configmaps named bad- are refused here"
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-native-jsonpatch}
spec:
  failurePolicy: Ignore
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [serviceaccounts], operations: [CREATE]}]
  mutations:
  - jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/spec", value: {"x": "y"}}, JSONPatch{op: "add", path: "/metadata/labels", value: {"patched": "yes"}}]'
`)
	vp := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-native-nscond"}}
	if x := waitExecution(t, ctx, vp, admissionv1alpha1.ExecutionWebhook); x.Reason != admissionv1alpha1.ReasonNotExpressible ||
		!strings.Contains(x.Message, "spec.match.conditions[0].expression") || !strings.Contains(x.Message, "namespaceObject") {
		t.Errorf("status.execution %+v", x)
	}
	mp := &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-native-jsonpatch"}}
	if x := waitExecution(t, ctx, mp, admissionv1alpha1.ExecutionWebhook); x.Reason != admissionv1alpha1.ReasonNotExpressible ||
		!strings.Contains(x.Message, "spec.mutations[0].jsonPatch") {
		t.Errorf("status.execution %+v", x)
	}
	waitWebhookRules(t, ctx, false, "configmaps")
	waitWebhookRules(t, ctx, true, "serviceaccounts")

	ok := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "e2e-nscond-ok"}}
	if err := env.Client.Create(ctx, ok); err != nil {
		t.Fatalf("a ConfigMap the policy allows: %v", err)
	}
	t.Cleanup(func() { deleteObj(t, ok) })
	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "bad-nscond"}}
	if err := env.Client.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "configmaps named bad- are refused here") {
		if err == nil {
			deleteObj(t, bad)
		}
		t.Fatalf("a ConfigMap the policy refuses: %v", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "e2e-jsonpatch"}}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatalf("a ServiceAccount patched with a field it does not have: %v", err)
	}
	t.Cleanup(func() { deleteObj(t, sa) })
	if sa.Labels["patched"] != "yes" {
		t.Fatalf("the webhook did not apply the patch: labels %v", sa.Labels)
	}
}

// auditAnnotationKey is how the audit log records audit annotation key of
// ValidationPolicy policy: the API server prefixes a webhook's with the
// webhook's name, a native policy's with the generated policy's.
func auditAnnotationKey(t *testing.T, ctx context.Context, policy, key string) string {
	t.Helper()
	vp := &admissionv1alpha1.ValidationPolicy{}
	if err := env.Client.Get(ctx, clientKey(policy), vp); err != nil {
		t.Fatal(err)
	}
	if x := vp.Status.Execution; x != nil && x.Mode == admissionv1alpha1.ExecutionNative {
		return policy + ".validate.portcullis.io/" + key
	}
	return "validate.portcullis.io/" + policy + "." + key
}

// webhookExecution sets execution Webhook for the test, for what only
// the webhook shows (its decision log, its chain), and restores the
// suite's mode after it.
func webhookExecution(t *testing.T, ctx context.Context) {
	t.Helper()
	if e2eExecution == operatorv1alpha1.ExecutionWebhook {
		return
	}
	if err := setExecution(ctx, operatorv1alpha1.ExecutionWebhook); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := setExecution(context.Background(), e2eExecution); err != nil {
			t.Error(err)
		}
	})
}

// edit reads obj, changes it and writes it back, again on a conflict (the
// API server's own controllers write status meanwhile).
func edit(t *testing.T, ctx context.Context, obj client.Object, change func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change()
		return env.Client.Update(ctx, obj)
	})
	if err != nil {
		t.Fatalf("editing %s: %v", obj.GetName(), err)
	}
}
