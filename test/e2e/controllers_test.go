package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

// controllerWait bounds the wait for a controller manager's controller to
// act: they work from informers, within seconds on an idle machine.
const controllerWait = time.Minute

// within polls cond for at most d.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, d, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	}); err != nil {
		t.Fatalf("%s: not within %s (last: %v)", what, d, last)
	}
}

// The clusterrole-aggregation controller fills the edit ClusterRole, and a
// RoleBinding to it grants a user Portcullis authenticated.
func TestAggregatedEditRoleGrantsATokenUser(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	const ns = "e2e-edit"
	ensureNamespace(t, ctx, ns)
	t.Cleanup(func() { deleteObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })

	within(t, ctx, controllerWait, "the edit ClusterRole lets deployments be created", func(ctx context.Context) (bool, error) {
		var role rbacv1.ClusterRole
		if err := env.Client.Get(ctx, clientKey("edit"), &role); err != nil {
			return false, err
		}
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, "apps") && slices.Contains(r.Resources, "deployments") && slices.Contains(r.Verbs, "create") {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d rules, none creates deployments", len(role.Rules))
	})

	frank, token := user(t, ctx, "frank")
	kc := tokenKubeconfig(t, token)
	if out, err := kubectl(t, ctx, kc, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || out != "frank" {
		t.Fatalf("kubectl auth whoami as frank: %q, %v", out, err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "franks"}}
	expectStatus(t, ctx, "frank creates a configmap before the binding", 403, func(ctx context.Context) error {
		_, err := frank.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	})

	if _, err := kubectl(t, ctx, "", "create", "rolebinding", "frank-edit", "--clusterrole=edit", "--user=frank", "-n", ns); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, ctx, "frank creates a configmap under edit", 200, func(ctx context.Context) error {
		_, err := frank.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	})
	if out, err := kubectl(t, ctx, kc, "auth", "can-i", "create", "deployments.apps", "-n", ns); err != nil || strings.TrimSpace(out) != "yes" {
		t.Errorf("frank can-i create deployments in %s: %q, %v", ns, out, err)
	}
	// edit grants nothing elsewhere, and nothing on RBAC itself.
	if out, _ := kubectl(t, ctx, kc, "auth", "can-i", "create", "configmaps", "-n", "default"); strings.TrimSpace(out) != "no" {
		t.Errorf("frank can-i create configmaps in default: %q, want no", out)
	}
	if out, _ := kubectl(t, ctx, kc, "auth", "can-i", "create", "rolebindings", "-n", ns); strings.TrimSpace(out) != "no" {
		t.Errorf("frank can-i create rolebindings in %s: %q, want no", ns, out)
	}
}

// A new namespace gets its default ServiceAccount, whose token (from
// kubectl create token) authenticates; a deleted namespace is emptied and
// removed.
func TestNamespaceLifecycle(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	const ns = "e2e-lifecycle"
	if _, err := kubectl(t, ctx, "", "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, controllerWait, "the default ServiceAccount of "+ns, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, err
	})
	token, err := kubectl(t, ctx, "", "create", "token", "default", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	who, err := whoami(ctx, t, strings.TrimSpace(token))
	if err != nil {
		t.Fatalf("the default ServiceAccount's token does not authenticate: %v", err)
	}
	if want := apiserverconfig.ServiceAccountUsername(ns, "default"); who.Username != want || !contains(who.Groups, "system:serviceaccounts:"+ns) {
		t.Errorf("the token authenticated as %+v, want %s in system:serviceaccounts:%s", who, want, ns)
	}

	if _, err := kubectl(t, ctx, "", "create", "configmap", "content", "-n", ns); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl(t, ctx, "", "delete", "namespace", ns, "--wait=false"); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, controllerWait, "namespace "+ns+" is gone", func(ctx context.Context) (bool, error) {
		var n corev1.Namespace
		err := env.Client.Get(ctx, clientKey(ns), &n)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("phase %s, conditions %+v, err %v", n.Status.Phase, n.Status.Conditions, err)
	})
}

// A Deployment's ReplicaSet creates its pods through Portcullis admission
// as the replicaset controller's own ServiceAccount: a MutationPolicy's
// label is on them, a ValidationPolicy Deny leaves the ReplicaSet reporting
// FailedCreate with the policy's message, an AccessPolicy Deny that stops
// other service accounts does not stop the controller, and deleting the
// Deployment garbage-collects the ReplicaSet and its pods.
func TestDeploymentThroughAdmission(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	const ns = "e2e-workloads"
	admin, err := kubernetes.NewForConfig(env.ControlPlane.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"e2e-workloads": "on"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	mark := len(operatorLog.String())

	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-workload-label}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {e2e-workloads: "on"}}
  mutations:
  - setLabels: {admitted-by: portcullis}
`)
	waitWebhookRules(t, ctx, true, "pods")

	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e-workloads}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.example/web:1}]
`
	if _, _, err := kubectlApplyStdin(t, ctx, "", fmt.Sprintf(deployment, 2)); err != nil {
		t.Fatal(err)
	}
	pods := func(ctx context.Context) ([]corev1.Pod, error) {
		l, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	// podsMutated waits for n pods, each owned by a ReplicaSet of the
	// Deployment and labelled by the MutationPolicy.
	podsMutated := func(n int) {
		t.Helper()
		within(t, ctx, controllerWait, fmt.Sprintf("%d mutated pods of the Deployment", n), func(ctx context.Context) (bool, error) {
			ps, err := pods(ctx)
			if err != nil {
				return false, err
			}
			for _, p := range ps {
				if p.Labels["admitted-by"] != "portcullis" {
					return false, fmt.Errorf("pod %s has labels %v", p.Name, p.Labels)
				}
				if owner := metav1.GetControllerOf(&p); owner == nil || owner.Kind != "ReplicaSet" {
					return false, fmt.Errorf("pod %s is not owned by a ReplicaSet: %v", p.Name, p.OwnerReferences)
				}
				if p.Status.Phase != corev1.PodPending {
					return false, fmt.Errorf("pod %s is %s without a kubelet", p.Name, p.Status.Phase)
				}
			}
			return len(ps) == n, fmt.Errorf("%d pods", len(ps))
		})
	}
	podsMutated(2)
	const rsController = "system:serviceaccount:kube-system:replicaset-controller"
	// On the webhook, the decision log shows the controller's request.
	mp := &admissionv1alpha1.MutationPolicy{}
	if err := env.Client.Get(ctx, clientKey("e2e-workload-label"), mp); err != nil {
		t.Fatal(err)
	}
	if x := mp.Status.Execution; x != nil && x.Mode == admissionv1alpha1.ExecutionWebhook {
		if phases := decisionsFor(operatorLog.String()[mark:], rsController, "pods"); !slices.Contains(phases, "mutate") {
			t.Errorf("no mutate decision for %s: %v", rsController, phases)
		}
	}

	// An AccessPolicy Deny on creating pods here for every service
	// account: it stops one with RBAC's edit role, not the replicaset
	// controller, whose requests never reach the Portcullis authorizer.
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-no-sa-pods}
spec:
  effect: Deny
  subjects: [{kind: Group, name: "system:serviceaccounts"}]
  rules: [{namespaces: [e2e-workloads], apiGroups: [""], resources: [pods], verbs: [create]}]
`)
	if _, err := kubectl(t, ctx, "", "create", "serviceaccount", "app", "-n", ns); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl(t, ctx, "", "create", "rolebinding", "app-edit", "--clusterrole=edit", "--serviceaccount="+ns+":app", "-n", ns); err != nil {
		t.Fatal(err)
	}
	saToken, err := kubectl(t, ctx, "", "create", "token", "app", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	saClient, err := kubernetes.NewForConfig(env.ControlPlane.TokenConfig(strings.TrimSpace(saToken)))
	if err != nil {
		t.Fatal(err)
	}
	denied := expectStatus(t, ctx, "the app ServiceAccount creates a pod", 403, func(ctx context.Context) error {
		_, err := saClient.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "by-app"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}, metav1.CreateOptions{})
		return err
	})
	if !strings.Contains(denied.Error(), "e2e-no-sa-pods") {
		t.Errorf("the 403 does not name the policy: %v", denied)
	}
	if _, err := kubectl(t, ctx, "", "scale", "deployment", "web", "--replicas=3", "-n", ns); err != nil {
		t.Fatal(err)
	}
	podsMutated(3)

	// A ValidationPolicy Deny: the ReplicaSet cannot create more pods and
	// says why.
	const refusal = "e2e: web pods are refused here"
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-refuse-web}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {e2e-workloads: "on"}}
  action: Deny
  validations:
  - expression: "!has(object.metadata.labels) || !('app' in object.metadata.labels) || object.metadata.labels['app'] != 'web'"
    message: "`+refusal+`"
`)
	waitWebhookRules(t, ctx, false, "pods")
	if _, err := kubectl(t, ctx, "", "scale", "deployment", "web", "--replicas=4", "-n", ns); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, controllerWait, "the ReplicaSet reports FailedCreate with the policy's message", func(ctx context.Context) (bool, error) {
		l, err := admin.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		for _, rs := range l.Items {
			for _, c := range rs.Status.Conditions {
				if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue && c.Reason == "FailedCreate" && strings.Contains(c.Message, refusal) {
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("%d ReplicaSets, conditions %+v", len(l.Items), l.Items)
	})
	if ps, err := pods(ctx); err != nil || len(ps) != 3 {
		t.Errorf("pods after the Deny: %d, %v; want 3", len(ps), err)
	}
	events, err := kubectl(t, ctx, "", "get", "events", "-n", ns, "--field-selector", "reason=FailedCreate", "-o", "jsonpath={.items[*].message}")
	if err != nil || !strings.Contains(events, refusal) {
		t.Errorf("no FailedCreate event with the policy's message: %q, %v", events, err)
	}

	// Deleting the Deployment garbage-collects its ReplicaSet and pods.
	if _, err := kubectl(t, ctx, "", "delete", "deployment", "web", "-n", ns, "--wait=false"); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, controllerWait, "the ReplicaSet and pods are garbage-collected", func(ctx context.Context) (bool, error) {
		l, err := admin.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ps, err := pods(ctx)
		if err != nil {
			return false, err
		}
		return len(l.Items) == 0 && len(ps) == 0, fmt.Errorf("%d ReplicaSets, %d pods left", len(l.Items), len(ps))
	})

	// The controller manager and the controllers never reached the
	// Portcullis authorizer, in this test or before it.
	for _, u := range append([]string{rsController, "system:serviceaccount:kube-system:generic-garbage-collector"}, apiserverconfig.ControlPlaneUsers...) {
		if phases := decisionsFor(operatorLog.String(), u, ""); slices.Contains(phases, "authorize") {
			t.Errorf("the Portcullis authorizer was asked about %s", u)
		}
	}
}
