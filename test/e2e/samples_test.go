package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// samplesDir is what `make run` applies.
const samplesDir = "../../config/samples"

// The samples `make run` applies load, and do what their comments say: bob
// authenticates and reads pods in project-caribou, and a Deployment there
// gets pods with the team label from the sample MutationPolicy, while a
// privileged one is refused by the sample ValidationPolicy.
func TestSamples(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	if err := env.ApplyDir(ctx, samplesDir); err != nil {
		t.Fatal(err)
	}
	// Everything but the namespace is removed again, so that later tests
	// see no sample policy.
	mutation := &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-team-label"}}
	validation := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-no-privileged"}}
	access := &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bob-reads-caribou-pods"}}
	exception := &admissionv1alpha1.PolicyException{ObjectMeta: metav1.ObjectMeta{Name: "caribou-node-agent"}}
	escalation := &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-no-privilege-escalation"}}
	limit := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-replica-limit"}}
	for _, o := range []client.Object{mutation, validation, access, exception, escalation, limit, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "bob"}}} {
		t.Cleanup(func() { deleteObj(t, o) })
	}
	within(t, ctx, time.Minute, "the sample PolicyException is Ready", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(exception), exception); err != nil {
			return false, err
		}
		for _, c := range exception.Status.Conditions {
			if c.Type == admissionv1alpha1.ConditionReady {
				return c.Status == metav1.ConditionTrue, fmt.Errorf("%s: %s", c.Reason, c.Message)
			}
		}
		return false, nil
	})
	waitAdmissionReady(t, ctx, mutation)
	waitAdmissionReady(t, ctx, validation)
	waitAdmissionReady(t, ctx, escalation)
	waitAdmissionReady(t, ctx, limit)
	waitReady(t, ctx, access)
	token, err := env.StaticToken(ctx, "bob", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bob := tokenKubeconfig(t, token)
	waitWebhookRules(t, ctx, true, "pods")
	waitWebhookRules(t, ctx, false, "pods")

	if _, err := kubectl(t, ctx, "", "-n", caribou, "create", "deployment", "web", "--image=registry.example/web:1", "--replicas=2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = kubectl(t, context.Background(), "", "-n", caribou, "delete", "deployment", "web", "--ignore-not-found")
	})
	within(t, ctx, controllerWait, "bob sees two Pending pods with team=caribou", func(ctx context.Context) (bool, error) {
		out, err := kubectl(t, ctx, bob, "-n", caribou, "get", "pods", "-l", "app=web,team=caribou,namespace="+caribou, "-o",
			"jsonpath={range .items[*]}{.status.phase} {.spec.containers[0].securityContext.allowPrivilegeEscalation};{end}")
		if err != nil {
			return false, err
		}
		return out == "Pending false;Pending false;", fmt.Errorf("phases and allowPrivilegeEscalation %q", out)
	})
	// The ConfigMap-parameterised limit: 5 replicas are refused.
	if _, err := kubectl(t, ctx, "", "-n", caribou, "create", "deployment", "big", "--image=registry.example/web:1", "--replicas=5"); err == nil || !strings.Contains(err.Error(), "at most 3 replicas in project-caribou, not 5") {
		t.Errorf("5 replicas under the sample limit: %v", err)
	}

	priv := `apiVersion: apps/v1
kind: Deployment
metadata: {name: privileged, namespace: ` + caribou + `}
spec:
  selector: {matchLabels: {app: privileged}}
  template:
    metadata: {labels: {app: privileged}}
    spec:
      containers: [{name: c, image: registry.example/c:1, securityContext: {privileged: true}}]
`
	if _, _, err := kubectlApplyStdin(t, ctx, "", priv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = kubectl(t, context.Background(), "", "-n", caribou, "delete", "deployment", "privileged", "--ignore-not-found")
	})
	within(t, ctx, controllerWait, "the privileged Deployment's ReplicaSet reports FailedCreate", func(ctx context.Context) (bool, error) {
		out, err := kubectl(t, ctx, "", "-n", caribou, "get", "replicasets", "-l", "app=privileged", "-o",
			`jsonpath={range .items[*].status.conditions[*]}{.reason}: {.message}{"\n"}{end}`)
		if err != nil {
			return false, err
		}
		return strings.Contains(out, "FailedCreate: ") && strings.Contains(out, "privileged containers are not allowed in project-caribou"), fmt.Errorf("conditions %q", out)
	})
	out, err := kubectl(t, ctx, "", "-n", caribou, "get", "pods", "-l", "app=privileged", "-o", "name")
	if err != nil {
		t.Fatalf("listing the privileged pods: %v", err)
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("privileged pods were stored: %q", out)
	}
}
