package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

func bundle(ctx context.Context, c client.Client) (*operatorv1alpha1.WebhookBundle, error) {
	var b operatorv1alpha1.WebhookBundle
	err := c.Get(ctx, client.ObjectKey{Name: operatorv1alpha1.DefaultName}, &b)
	return &b, err
}

func condition(b *operatorv1alpha1.WebhookBundle, t string) string {
	if c := meta.FindStatusCondition(b.Status.Conditions, t); c != nil {
		return string(c.Status)
	}
	return "absent"
}

// The WebhookBundle reports each condition truthfully, counts policies, and
// its spec reconfigures the admission webhooks.
func TestWebhookBundleStatusAndSpec(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	// A token user's request makes the API server call /authenticate and
	// /authorize.
	cs, _ := user(t, ctx, "wb-user")
	_, _ = cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	eventually(t, ctx, "the bundle is Ready with every condition true", func(ctx context.Context) (bool, error) {
		b, err := bundle(ctx, env.Client)
		if err != nil {
			return false, err
		}
		for _, ct := range []string{
			operatorv1alpha1.ConditionCertificateReady, operatorv1alpha1.ConditionCRDsEstablished,
			operatorv1alpha1.ConditionAdmissionWebhooksConfigured, operatorv1alpha1.ConditionAuthenticationWebhookObserved,
			operatorv1alpha1.ConditionAuthorizationWebhookObserved, operatorv1alpha1.ConditionReady,
		} {
			if condition(b, ct) != "True" {
				return false, fmt.Errorf("%s is %s: %+v", ct, condition(b, ct), b.Status.Conditions)
			}
		}
		if b.Status.Certificate.NotAfter == nil || len(b.Status.Policies) < 5 {
			return false, fmt.Errorf("status: %+v", b.Status)
		}
		return true, nil
	})

	// The spec drives the validating webhook's timeout and failure policy.
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-wb-any}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [secrets], operations: [CREATE]}]}
  validations: [{expression: "true"}]
`)
	patch := func(body string) {
		b := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
		if err := env.Client.Patch(ctx, b, client.RawPatch("application/merge-patch+json", []byte(body))); err != nil {
			t.Fatal(err)
		}
	}
	// Execution Webhook: the API server could evaluate the policy itself.
	patch(`{"spec":{"admission":{"execution":"Webhook","validating":{"timeoutSeconds":7,"failurePolicy":"Ignore"},"excludedNamespaces":["e2e-quiet"]}}}`)
	t.Cleanup(func() {
		patch(fmt.Sprintf(`{"spec":{"admission":{"execution":%q,"validating":null,"excludedNamespaces":null}}}`, e2eExecution))
	})
	eventually(t, ctx, "the ValidatingWebhookConfiguration follows the bundle", func(ctx context.Context) (bool, error) {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := env.Client.Get(ctx, clientKey(app.ValidatingWebhookConfiguration), &v); err != nil {
			return false, err
		}
		w := v.Webhooks[0]
		ns := fmt.Sprint(w.NamespaceSelector.MatchExpressions)
		return *w.TimeoutSeconds == 7 && *w.FailurePolicy == admissionregistrationv1.Ignore && contains(w.NamespaceSelector.MatchExpressions[0].Values, "e2e-quiet"),
			fmt.Errorf("timeout %d policy %s namespaces %s", *w.TimeoutSeconds, *w.FailurePolicy, ns)
	})
	// The spec drives the API-server wiring the operator publishes.
	patch(`{"spec":{"authorization":{"failurePolicy":"Deny","authorizedTTL":"1m"}}}`)
	t.Cleanup(func() { patch(`{"spec":{"authorization":null}}`) })
	eventually(t, ctx, "the published AuthorizationConfiguration follows the bundle", func(ctx context.Context) (bool, error) {
		var cm corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: app.WiringSecret}, &cm); err != nil {
			return false, err
		}
		ac := string(cm.Data[apiserverconfig.AuthorizationConfigFile])
		return strings.Contains(ac, "failurePolicy: Deny") && strings.Contains(ac, "authorizedTTL: 1m0s"), fmt.Errorf("%s", ac)
	})
	// The singleton is refused under another name.
	if err := env.Apply(ctx, []byte("apiVersion: operator.portcullis.io/v1alpha1\nkind: WebhookBundle\nmetadata: {name: other}\n")); err == nil {
		t.Fatal("a second WebhookBundle was accepted")
	}
}

// With nothing calling /authorize yet, the bundle says so: Ready is false
// and names the condition, rather than claiming health it has not seen.
func TestWebhookBundleReportsUnobservedPhases(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	quiet, err := devenv.Start(ctx, devenv.Options{RuntimeConfig: map[string]string{"authentication.portcullis.io/v1alpha1": "false"}, WithoutControllerManager: true, DecisionLog: decisionLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = quiet.Stop() })
	eventually(t, ctx, "the bundle reports authorization not observed", func(ctx context.Context) (bool, error) {
		b, err := bundle(ctx, quiet.Client)
		if err != nil {
			return false, err
		}
		return condition(b, operatorv1alpha1.ConditionAuthenticationWebhookObserved) == "absent" &&
				condition(b, operatorv1alpha1.ConditionAuthorizationWebhookObserved) == "False" &&
				condition(b, operatorv1alpha1.ConditionReady) == "False",
			fmt.Errorf("%+v", b.Status.Conditions)
	})
}
