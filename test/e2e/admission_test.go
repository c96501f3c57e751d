package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
)

const admissionNS = "e2e-admission"

// podWriter makes a token user who may do anything with pods in
// admissionNS (by an AccessPolicy, so the whole chain is Portcullis's) and
// returns a kubeconfig for them.
func podWriter(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	ensureNamespace(t, ctx, admissionNS)
	_, token := user(t, ctx, name)
	policy(t, ctx, fmt.Sprintf(`
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-%[1]s-pods}
spec:
  effect: Allow
  subjects: [{kind: User, name: %[1]s}]
  rules: [{namespaces: [%[2]s], apiGroups: [""], resources: [pods, pods/exec], verbs: ["*"]}]
`, name, admissionNS))
	return tokenKubeconfig(t, token)
}

func admissionPolicy(t *testing.T, ctx context.Context, manifest string) {
	t.Helper()
	apply(t, ctx, manifest)
	name := between(manifest, "name: ", "}")
	var obj client.Object = &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if strings.Contains(manifest, "kind: MutationPolicy") {
		obj = &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	t.Cleanup(func() { deleteObj(t, obj) })
	waitAdmissionReady(t, ctx, obj)
}

// waitAdmissionReady waits until a MutationPolicy or ValidationPolicy
// reports Ready for its generation, and who executes it is settled: the
// API server (with Auto, for what it can express, once it holds the
// generated policy) or the webhook.
func waitAdmissionReady(t *testing.T, ctx context.Context, obj client.Object) {
	t.Helper()
	eventually(t, ctx, obj.GetName()+" Ready", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err
		}
		st := policyStatus(obj)
		for _, c := range st.Conditions {
			if c.Type == admissionv1alpha1.ConditionReady && c.ObservedGeneration == obj.GetGeneration() {
				if c.Status != metav1.ConditionTrue {
					return false, fmt.Errorf("%s: %s", c.Reason, c.Message)
				}
				x := execution(st, obj.GetGeneration())
				if x == nil || e2eExecution == operatorv1alpha1.ExecutionWebhook && x.Mode != admissionv1alpha1.ExecutionWebhook {
					return false, fmt.Errorf("execution %+v", st.Execution)
				}
				return true, nil
			}
		}
		return false, nil
	})
}

func podManifest(name, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:
  containers:
  - name: app
    image: registry.example/app:1
%s`, name, admissionNS, extra)
}

func kubectlApplyStdin(t *testing.T, ctx context.Context, kubeconfig, manifest string, args ...string) (string, string, error) {
	t.Helper()
	return kubectlFile(t, ctx, kubeconfig, "apply", manifest, args...)
}

// kubectlFile runs `kubectl VERB -f FILE` with the manifest in a file.
func kubectlFile(t *testing.T, ctx context.Context, kubeconfig, verb, manifest string, args ...string) (string, string, error) {
	t.Helper()
	f := t.TempDir() + "/m.yaml"
	if err := writeFile(f, manifest); err != nil {
		t.Fatal(err)
	}
	return env.ControlPlane.Kubectl(ctx, kubeconfig, append([]string{verb, "-f", f}, args...)...)
}

// waitWebhookRules waits until the operator's configuration matches
// resource, i.e. the loaded policies reached the API server's webhook
// rules, when a loaded policy that the webhook serves names it (with
// Auto, the API server may execute them all itself).
func waitWebhookRules(t *testing.T, ctx context.Context, mutating bool, resource string) {
	t.Helper()
	var list client.ObjectList = &admissionv1alpha1.ValidationPolicyList{}
	if mutating {
		list = &admissionv1alpha1.MutationPolicyList{}
	}
	if err := env.Client.List(ctx, list); err != nil {
		t.Fatal(err)
	}
	onWebhook := false
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		obj := o.(client.Object)
		b, _ := json.Marshal(o)
		x := policyStatus(obj).Execution
		if (x == nil || x.Mode == admissionv1alpha1.ExecutionWebhook) && strings.Contains(string(b), `"`+resource+`"`) {
			onWebhook = true
		}
		return nil
	})
	if !onWebhook {
		return
	}
	eventually(t, ctx, "the webhook configuration covers "+resource, func(ctx context.Context) (bool, error) {
		var b []byte
		if mutating {
			var m admissionregistrationv1.MutatingWebhookConfiguration
			if err := env.Client.Get(ctx, clientKey(app.MutatingWebhookConfiguration), &m); err != nil {
				return false, err
			}
			b, _ = json.Marshal(m.Webhooks)
		} else {
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			if err := env.Client.Get(ctx, clientKey(app.ValidatingWebhookConfiguration), &v); err != nil {
				return false, err
			}
			b, _ = json.Marshal(v.Webhooks)
		}
		return strings.Contains(string(b), `"`+resource+`"`), nil
	})
}

func TestMutationIsStored(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	kc := podWriter(t, ctx, "mia")
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-pod-defaults}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    excludedNamespaces: [default]
  order: 10
  mutations:
  - setLabels: {team: caribou, tier: app}
  - setAnnotations: {owner: platform}
  - jsonPatch: '[{"op":"add","path":"/spec/terminationGracePeriodSeconds","value":5}]'
  - mergePatch: {spec: {enableServiceLinks: false}}
`)
	waitWebhookRules(t, ctx, true, "pods")
	// The user's own tier label is kept: overwrite is false by default.
	_, _, err := kubectlApplyStdin(t, ctx, kc, strings.Replace(podManifest("mutated", ""), "metadata: {name: mutated,", "metadata: {labels: {tier: db}, name: mutated,", 1))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: admissionNS, Name: "mutated"}, &pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, &pod) })
	if pod.Labels["team"] != "caribou" || pod.Labels["tier"] != "db" || pod.Annotations["owner"] != "platform" ||
		pod.Spec.TerminationGracePeriodSeconds == nil || *pod.Spec.TerminationGracePeriodSeconds != 5 ||
		pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		t.Fatalf("stored pod was not mutated as the policy says: labels=%v annotations=%v grace=%v links=%v",
			pod.Labels, pod.Annotations, pod.Spec.TerminationGracePeriodSeconds, pod.Spec.EnableServiceLinks)
	}

	// Deleting the webhook configuration gets it restored.
	if err := env.Client.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: app.MutatingWebhookConfiguration}}); err != nil {
		t.Fatal(err)
	}
	waitWebhookRules(t, ctx, true, "pods")
	// And an edit to it is undone.
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := env.Client.Get(ctx, clientKey(app.MutatingWebhookConfiguration), &m); err != nil {
		t.Fatal(err)
	}
	ignore := admissionregistrationv1.Fail
	m.Webhooks[0].FailurePolicy = &ignore
	if err := env.Client.Update(ctx, &m); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the edited failurePolicy is restored", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, clientKey(app.MutatingWebhookConfiguration), &m); err != nil {
			return false, err
		}
		return *m.Webhooks[0].FailurePolicy == admissionregistrationv1.Ignore, nil
	})
	// So is the next edit (the restore leaves the API server recording
	// who writes the configuration), one that adds what the operator never sets: an
	// objectSelector no pod matches and an always-false matchCondition,
	// either of which would keep every request from the webhook.
	m.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "set"}}
	m.Webhooks[0].MatchConditions = append(m.Webhooks[0].MatchConditions, admissionregistrationv1.MatchCondition{Name: "bypass", Expression: "false"})
	if err := env.Client.Update(ctx, &m); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the added objectSelector and matchCondition are removed", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, clientKey(app.MutatingWebhookConfiguration), &m); err != nil {
			return false, err
		}
		w := m.Webhooks[0]
		bypassed := w.ObjectSelector != nil && len(w.ObjectSelector.MatchLabels) > 0
		for _, c := range w.MatchConditions {
			bypassed = bypassed || c.Name == "bypass"
		}
		return !bypassed, fmt.Errorf("objectSelector %v, matchConditions %v", w.ObjectSelector, w.MatchConditions)
	})
	eventually(t, ctx, "the bundle says the webhooks are configured", func(ctx context.Context) (bool, error) {
		b, err := bundle(ctx, env.Client)
		if err != nil {
			return false, err
		}
		return condition(b, operatorv1alpha1.ConditionAdmissionWebhooksConfigured) == "True", fmt.Errorf("%+v", b.Status.Conditions)
	})
	// Restored, with the API server's defaults, it is left alone: no
	// replacement follows another.
	rv := m.ResourceVersion
	time.Sleep(2 * time.Second)
	if err := env.Client.Get(ctx, clientKey(app.MutatingWebhookConfiguration), &m); err != nil {
		t.Fatal(err)
	}
	if m.ResourceVersion != rv {
		t.Fatalf("the restored configuration keeps being written: resourceVersion %s, then %s", rv, m.ResourceVersion)
	}
}

func TestValidationDenyWarnAudit(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	kc := podWriter(t, ctx, "val")
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-no-privileged}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE, UPDATE]}]
  action: Deny
  validations:
  - expression: "object.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || c.securityContext.privileged != true)"
    message: "privileged containers are not allowed"
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-want-limits}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
  action: Warn
  validations:
  - expression: "object.spec.containers.all(c, has(c.resources) && has(c.resources.limits))"
    messageExpression: "'pod ' + object.metadata.name + ' has a container without resource limits'"
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-audit-latest}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
  action: Audit
  validations:
  - expression: "object.spec.containers.all(c, !c.image.endsWith(':1'))"
    message: "image tag 1 is audited"
`)
	waitWebhookRules(t, ctx, false, "pods")

	// Deny: kubectl shows the policy's message, and nothing is stored.
	_, stderr, err := kubectlApplyStdin(t, ctx, kc, podManifest("priv", "    securityContext: {privileged: true}\n"))
	if err == nil || !strings.Contains(stderr, "privileged containers are not allowed") || !strings.Contains(stderr, "e2e-no-privileged") {
		t.Fatalf("privileged pod: err=%v stderr=%s", err, stderr)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: admissionNS, Name: "priv"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a rejected pod was stored: %v", err)
	}

	// Warn and Audit: admitted; kubectl prints the warning.
	_, stderr, err = kubectlApplyStdin(t, ctx, kc, podManifest("warned", ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteObj(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "warned"}})
	})
	if !strings.Contains(stderr, "Warning:") || !strings.Contains(stderr, "pod warned has a container without resource limits") {
		t.Fatalf("kubectl did not show the warning: %s", stderr)
	}
	// Audit: the annotation is in the API server's audit log.
	eventually(t, ctx, "the audit annotation is in the audit log", func(ctx context.Context) (bool, error) {
		// The webhook's key is validate.portcullis.io/validation_failure, a
		// native policy's validation.policy.admission.k8s.io/validation_failure.
		return auditLogHas(`/validation_failure`, "e2e-audit-latest", `"warned"`)
	})
}

// auditLogHas reports whether one audit event contains every string.
func auditLogHas(all ...string) (bool, error) {
	f, err := os.Open(env.AuditLogPath)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		ok := true
		for _, s := range all {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true, nil
		}
	}
	return false, sc.Err()
}

func TestInvalidAdmissionPoliciesAreRefused(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	for name, c := range map[string]struct{ manifest, want string }{
		"invalid CEL": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-bad-cel}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
  validations: [{expression: "object.spec.containers.all(c, "}]
`, "spec.validations[0].expression"},
		"unknown field in CEL": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-bad-cel2}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    conditions: [{name: c, expression: "request.nope == 1"}]
  validations: [{expression: "true"}]
`, "spec.match.conditions[0].expression"},
		"broken JSON patch": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-bad-patch}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
  mutations: [{jsonPatch: '[{"op":"add","path":'}]
`, "spec.mutations[0].jsonPatch"},
		"a jsonPatch of neither form": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-bad-patch-form}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
  mutations: [{jsonPatch: {patch: x}}]
`, "spec.mutations[0].jsonPatch: Invalid value"},
		"an applyConfiguration that is not an Object": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-bad-apply}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
  mutations: [{applyConfiguration: {expression: "object.spec"}}]
`, "spec.mutations[0].applyConfiguration.expression"},
		"a paramRef without parameterNotFoundAction": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-bad-params}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  paramRef: {name: limits}
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
  validations: [{expression: "params.data.x == 'y'"}]
`, "spec.paramRef.parameterNotFoundAction"},
		"a variable that is not an identifier": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-bad-variable}
spec:
  variables: [{name: my-var, expression: "1"}]
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
  validations: [{expression: "true"}]
`, "spec.variables[0].name"},
		"an audit annotation key with a slash": {`
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-bad-annotation}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]}
  auditAnnotations: [{key: a/b, valueExpression: "'x'"}]
`, "spec.auditAnnotations[0].key"},
	} {
		t.Run(name, func(t *testing.T) {
			err := env.Apply(ctx, []byte(c.manifest))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want a refusal naming %s, got %v", c.want, err)
			}
		})
	}
}

// The chain in order: one request by a token user is seen by
// authenticate, authorize, mutate and validate, in that order; a request
// denied at authorization never reaches admission.
func TestChainOrder(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	// The chain of the four webhooks: the API server would otherwise
	// evaluate both policies itself.
	webhookExecution(t, ctx)
	kc := podWriter(t, ctx, "chain-user")
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-chain-mutate}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  mutations: [{setLabels: {chain: seen}}]
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-chain-validate}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  validations: [{expression: "object.metadata.labels.chain == 'seen'", message: "mutation ran first"}]
`)
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-chain-cm}
spec:
  effect: Allow
  subjects: [{kind: User, name: chain-user}]
  rules: [{namespaces: [`+admissionNS+`], apiGroups: [""], resources: [configmaps], verbs: [create]}]
`)
	eventually(t, ctx, "configmaps are in the webhook rules", func(ctx context.Context) (bool, error) {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := env.Client.Get(ctx, clientKey(app.ValidatingWebhookConfiguration), &v); err != nil {
			return false, err
		}
		b, _ := json.Marshal(v.Webhooks)
		return strings.Contains(string(b), `"configmaps"`), nil
	})
	mark := len(operatorLog.String())
	// kubectl create: the user may only create configmaps (apply would
	// read first).
	_, stderr, err := kubectlFile(t, ctx, kc, "create", `apiVersion: v1
kind: ConfigMap
metadata: {name: chain, namespace: `+admissionNS+`}
data: {k: v}
`)
	if err != nil {
		t.Fatalf("create configmap: %v %s", err, stderr)
	}
	t.Cleanup(func() {
		deleteObj(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "chain"}})
	})
	phases := decisionsFor(operatorLog.String()[mark:], "chain-user", "configmaps")
	want := []string{"authorize", "mutate", "validate"}
	if !containsInOrder(phases, want) {
		t.Fatalf("decision log for chain-user on configmaps: %v, want %v in order", phases, want)
	}
	// authenticate has no resource: it comes first for a fresh token.
	all := decisionsFor(operatorLog.String(), "chain-user", "")
	if len(all) == 0 || all[0] != "authenticate" {
		t.Fatalf("first decision for chain-user: %v", all)
	}

	// Denied at authorization: never reaches admission.
	mark = len(operatorLog.String())
	_, _, err = kubectlFile(t, ctx, kc, "create", `apiVersion: v1
kind: ConfigMap
metadata: {name: chain2, namespace: default}
data: {k: v}
`)
	if err == nil {
		t.Fatal("chain-user created a configmap in default")
	}
	later := decisionsFor(operatorLog.String()[mark:], "chain-user", "configmaps")
	for _, p := range later {
		if p == "mutate" || p == "validate" {
			t.Fatalf("a request denied at authorization reached admission: %v", later)
		}
	}
	if !containsInOrder(later, []string{"authorize"}) {
		t.Fatalf("no authorize decision for the denied request: %v", later)
	}
}

// decisionsFor returns the phases of the decision log lines for user (and
// a resource substring, if given), in log order.
func decisionsFor(log, user, resource string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `"msg":"decision"`) {
			continue
		}
		var e struct {
			Phase    string `json:"phase"`
			User     string `json:"user"`
			Resource string `json:"resource"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.User != user {
			continue
		}
		if resource != "" && !strings.Contains(e.Resource, resource) {
			continue
		}
		out = append(out, e.Phase)
	}
	return out
}

func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// Server-side dry runs go through admission too (the webhooks declare no
// side effects), and CONNECT on pods/exec can be matched.
func TestDryRunAndConnectAreMatched(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	kc := podWriter(t, ctx, "dora")
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-dryrun-deny}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    conditions: [{name: only-dry-run, expression: "request.dryRun == true"}]
  validations: [{expression: "false", message: "dry run seen by Portcullis"}]
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-no-exec}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods/exec], operations: [CONNECT]}]
  validations: [{expression: "false", message: "exec is disabled in this namespace"}]
`)
	waitWebhookRules(t, ctx, false, "pods")
	_, stderr, err := kubectlFile(t, ctx, kc, "create", podManifest("dry", ""), "--dry-run=server")
	if err == nil || !strings.Contains(stderr, "dry run seen by Portcullis") {
		t.Fatalf("server dry run: %v %s", err, stderr)
	}
	// The same pod for real is admitted: the condition matched dry runs only.
	if _, stderr, err := kubectlFile(t, ctx, kc, "create", podManifest("exec-target", "")); err != nil {
		t.Fatalf("create: %v %s", err, stderr)
	}
	t.Cleanup(func() {
		deleteObj(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: admissionNS, Name: "exec-target"}})
	})
	_, stderr, err = env.ControlPlane.Kubectl(ctx, kc, "exec", "-n", admissionNS, "exec-target", "--", "true")
	if err == nil || !strings.Contains(stderr, "exec is disabled in this namespace") {
		t.Fatalf("exec: %v %s", err, stderr)
	}
}
