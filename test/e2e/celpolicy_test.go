package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// CEL mutations and parameters on real workloads: the ReplicaSet
// controller's pods get allowPrivilegeEscalation: false on every
// container and the team label of their namespace, and a Deployment's
// replicas are limited by a ConfigMap that is changed without touching
// the policy.
func TestCELPoliciesOnWorkloads(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	const ns = "e2e-cel"
	admin, err := kubernetes.NewForConfig(env.ControlPlane.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	apply(t, ctx, `
apiVersion: v1
kind: Namespace
metadata: {name: e2e-cel, labels: {team: antlers, e2e-cel: "on"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: e2e-cel}
data: {maxReplicas: "3"}
`)
	t.Cleanup(func() { deleteObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })

	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-no-privilege-escalation}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {e2e-cel: "on"}}
  variables:
  - name: initContainers
    expression: "has(object.spec.initContainers) ? object.spec.initContainers : []"
  mutations:
  - applyConfiguration:
      expression: >
        Object{spec: Object.spec{
          containers: object.spec.containers.map(c, Object.spec.containers{
            name: c.name,
            securityContext: Object.spec.containers.securityContext{allowPrivilegeEscalation: false}}),
          initContainers: variables.initContainers.map(c, Object.spec.initContainers{
            name: c.name,
            securityContext: Object.spec.initContainers.securityContext{allowPrivilegeEscalation: false}})
        }}
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-team-from-namespace}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {e2e-cel: "on"}}
    conditions:
    - {name: namespace-has-a-team, expression: "'team' in namespaceObject.metadata.labels"}
  mutations:
  - jsonPatch:
      expression: >
        [JSONPatch{op: "add", path: "/metadata/labels/team", value: namespaceObject.metadata.labels["team"]}]
  auditAnnotations:
  - {key: team, valueExpression: "'set to ' + object.metadata.labels['team']"}
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-max-replicas}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  paramRef: {name: limits, parameterNotFoundAction: Deny}
  match:
    resources: [{apiGroups: [apps], apiVersions: [v1], resources: [deployments], operations: [CREATE, UPDATE]}]
    namespaceSelector: {matchLabels: {e2e-cel: "on"}}
  variables:
  - {name: max, expression: "int(params.data.maxReplicas)"}
  validations:
  - expression: "object.spec.replicas <= variables.max"
    messageExpression: "'at most ' + string(variables.max) + ' replicas, not ' + string(object.spec.replicas)"
`)
	waitWebhookRules(t, ctx, true, "pods")
	waitWebhookRules(t, ctx, false, "deployments")

	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e-cel}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers: [{name: setup, image: registry.example/setup:1}]
      containers:
      - {name: web, image: registry.example/web:1}
      - {name: proxy, image: registry.example/proxy:1, securityContext: {runAsNonRoot: true}}
`
	if _, stderr, err := kubectlApplyStdin(t, ctx, "", fmt.Sprintf(deployment, 2)); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	within(t, ctx, controllerWait, "two pods of the Deployment, mutated", func(ctx context.Context) (bool, error) {
		l, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(l.Items) != 2 {
			return false, err
		}
		for _, p := range l.Items {
			if owner := metav1.GetControllerOf(&p); owner == nil || owner.Kind != "ReplicaSet" {
				return false, fmt.Errorf("pod %s is not the ReplicaSet's: %v", p.Name, p.OwnerReferences)
			}
			if p.Labels["team"] != "antlers" {
				return false, fmt.Errorf("pod %s has labels %v", p.Name, p.Labels)
			}
			for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
				sc := c.SecurityContext
				if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					return false, fmt.Errorf("pod %s container %s: securityContext %+v", p.Name, c.Name, sc)
				}
			}
			// What the pod had is kept: the apply configuration merges.
			if sc := p.Spec.Containers[1].SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				return false, fmt.Errorf("pod %s lost the proxy's runAsNonRoot: %+v", p.Name, sc)
			}
		}
		return true, nil
	})

	// The MutationPolicy's audit annotation, on the object as it left it.
	eventually(t, ctx, "the mutation's audit annotation is recorded", func(ctx context.Context) (bool, error) {
		return auditLogHas(`"mutate.portcullis.io/e2e-team-from-namespace.team":"set to antlers"`)
	})

	// The limit is the ConfigMap's: 5 replicas are refused...
	scale := func(n int) error {
		_, err := admin.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)), metav1.PatchOptions{})
		return err
	}
	if err := scale(5); err == nil || !strings.Contains(err.Error(), "at most 3 replicas, not 5") {
		t.Fatalf("5 replicas under a limit of 3: %v", err)
	}
	// ...until the ConfigMap says 5; the policy is not touched.
	apply(t, ctx, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: limits, namespace: e2e-cel}\ndata: {maxReplicas: \"5\"}\n")
	eventually(t, ctx, "5 replicas under a limit of 5", func(ctx context.Context) (bool, error) {
		err := scale(5)
		return err == nil, err
	})
	var d appsv1.Deployment
	if got, err := admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || *got.Spec.Replicas != 5 {
		t.Fatalf("deployment %v, %v", got, err)
	} else {
		d = *got
	}
	// Without the ConfigMap, parameterNotFoundAction Deny refuses.
	if err := admin.CoreV1().ConfigMaps(ns).Delete(ctx, "limits", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "no limit, no change", func(ctx context.Context) (bool, error) {
		err := scale(int(*d.Spec.Replicas) - 1)
		return err != nil && strings.Contains(err.Error(), "no params found"), err
	})
}
