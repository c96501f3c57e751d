package operator

import (
	"context"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/controllers/webhookconfig"
)

// Overrides returns the function the webhook configuration reconciler
// calls to apply the WebhookBundle's spec: the endpoint, and per admission
// webhook whether it is on, its failure policy and timeout, and the extra
// namespaces it skips. A missing bundle changes nothing.
func Overrides(c client.Client) func(ctx context.Context, a *webhookconfig.Admission, ep *webhookconfig.Endpoint) error {
	return func(ctx context.Context, a *webhookconfig.Admission, ep *webhookconfig.Endpoint) error {
		var b operatorv1alpha1.WebhookBundle
		if err := c.Get(ctx, client.ObjectKey{Name: operatorv1alpha1.DefaultName}, &b); err != nil {
			return client.IgnoreNotFound(err)
		}
		applyEndpoint(ep, b.Spec.Endpoint)
		if a == nil {
			return nil
		}
		apply := func(w operatorv1alpha1.AdmissionWebhook, disabled *bool, fp *admissionregistrationv1.FailurePolicyType, timeout *int32) {
			if w.Enabled != nil && !*w.Enabled {
				*disabled = true
			}
			if w.FailurePolicy != "" {
				*fp = admissionregistrationv1.FailurePolicyType(w.FailurePolicy)
			}
			if w.TimeoutSeconds != 0 {
				*timeout = w.TimeoutSeconds
			}
		}
		apply(b.Spec.Admission.Mutating, &a.MutatingDisabled, &a.MutatingFailurePolicy, &a.MutatingTimeoutSeconds)
		apply(b.Spec.Admission.Validating, &a.ValidatingDisabled, &a.ValidatingFailurePolicy, &a.ValidatingTimeoutSeconds)
		a.ExcludedNamespaces = append(append([]string(nil), a.ExcludedNamespaces...), b.Spec.Admission.ExcludedNamespaces...)
		a.Webhook = b.Spec.Admission.Execution == operatorv1alpha1.ExecutionWebhook
		return nil
	}
}

// applyEndpoint sets ep to the WebhookBundle's endpoint, when it names
// one: the webhook configurations and the published API-server wiring
// both follow it, so the API server reaches the same host for every
// phase (and its admission kubeconfig names that host).
func applyEndpoint(ep *webhookconfig.Endpoint, e *operatorv1alpha1.Endpoint) {
	switch {
	case e == nil:
	case e.URL != "":
		*ep = webhookconfig.Endpoint{URL: e.URL}
	case e.Service != nil:
		port := e.Service.Port
		if port == 0 {
			port = 443
		}
		*ep = webhookconfig.Endpoint{ServiceNamespace: e.Service.Namespace, ServiceName: e.Service.Name, ServicePort: port}
	}
}
