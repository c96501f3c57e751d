package operator

import (
	"testing"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

// The published wiring names the endpoint the webhook configurations
// name, so the admission kubeconfig's user is for the host the API server
// calls.
func TestWiringFollowsTheBundleEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   *operatorv1alpha1.Endpoint
		want string
	}{
		{"no endpoint", nil, "https://portcullis-webhook.portcullis-system.svc:443"},
		{"a URL", &operatorv1alpha1.Endpoint{URL: "https://10.96.0.100:443"}, "https://10.96.0.100:443"},
		{"a Service", &operatorv1alpha1.Endpoint{Service: &operatorv1alpha1.ServiceEndpoint{Namespace: "ns", Name: "hooks"}}, "https://hooks.ns.svc:443"},
	} {
		o := apiserverconfig.Options{URL: "https://portcullis-webhook.portcullis-system.svc:443"}
		applyWiring(&o, &operatorv1alpha1.WebhookBundleSpec{Endpoint: tc.ep})
		if o.URL != tc.want {
			t.Errorf("%s: URL %s, want %s", tc.name, o.URL, tc.want)
		}
	}
}
