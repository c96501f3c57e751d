package webhookconfig

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// FieldOwner is the server-side apply manager of the configurations.
const FieldOwner = "portcullis"

// Endpoint says how the API server reaches the webhook server: a URL (a
// local or out-of-cluster operator) or a Service (in a cluster).
type Endpoint struct {
	// URL is the https base URL; paths are appended.
	URL string
	// ServiceNamespace, ServiceName, ServicePort name the webhook Service.
	ServiceNamespace, ServiceName string
	ServicePort                   int32
}

// clientConfig renders the endpoint for one path.
func (e Endpoint) clientConfig(path string, ca []byte) *admissionregistrationv1ac.WebhookClientConfigApplyConfiguration {
	cc := admissionregistrationv1ac.WebhookClientConfig().WithCABundle(ca...)
	if e.URL != "" {
		return cc.WithURL(e.URL + path)
	}
	return cc.WithService(admissionregistrationv1ac.ServiceReference().
		WithNamespace(e.ServiceNamespace).WithName(e.ServiceName).WithPort(e.ServicePort).WithPath(path))
}

// OwnKinds describes the validating webhook for Portcullis's own kinds.
type OwnKinds struct {
	// Name of the ValidatingWebhookConfiguration.
	Name string
	// Path served by the operator.
	Path string
	// Rules: which of our kinds are validated (only groups that are on).
	Rules []admissionregistrationv1.RuleWithOperations
}

// TimeoutSeconds for the own-kinds webhook: the escalation check makes a
// few SubjectAccessReviews, each a millisecond or so on a healthy API server.
const ownKindsTimeoutSeconds = 10

// Desired renders the own-kinds configuration. Its failure policy is Fail:
// a policy that cannot be checked is not accepted. Only CREATE and UPDATE
// are sent, so deleting a policy never depends on the webhook.
func (o OwnKinds) Desired(ep Endpoint, ca []byte) *admissionregistrationv1ac.ValidatingWebhookConfigurationApplyConfiguration {
	wh := admissionregistrationv1ac.ValidatingWebhook().
		WithName("policies.portcullis.io").
		WithClientConfig(ep.clientConfig(o.Path, ca)).
		WithFailurePolicy(admissionregistrationv1.Fail).
		WithSideEffects(admissionregistrationv1.SideEffectClassNone).
		WithAdmissionReviewVersions("v1").
		WithTimeoutSeconds(ownKindsTimeoutSeconds).
		WithMatchPolicy(admissionregistrationv1.Equivalent)
	for _, r := range o.Rules {
		rule := admissionregistrationv1ac.RuleWithOperations().WithOperations(r.Operations...).
			WithAPIGroups(r.APIGroups...).WithAPIVersions(r.APIVersions...).WithResources(r.Resources...)
		if r.Scope != nil {
			rule = rule.WithScope(*r.Scope)
		}
		wh = wh.WithRules(rule)
	}
	return admissionregistrationv1ac.ValidatingWebhookConfiguration(o.Name).
		WithLabels(map[string]string{"app.kubernetes.io/managed-by": "portcullis"}).
		WithWebhooks(wh)
}

// Reconciler applies the desired configuration and restores it when it is
// edited or deleted. It runs on the leader only.
type Reconciler struct {
	Client   client.Client
	OwnKinds OwnKinds
	Endpoint Endpoint
	// CABundle returns the current CA bundle (it changes on rotation).
	CABundle func() ([]byte, error)
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations;mutatingwebhookconfigurations,verbs=get;list;watch;create;update;patch;delete

// Reconcile applies the configuration. Server-side apply with forced
// ownership makes it idempotent and undoes edits to the fields we own.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	ca, err := r.CABundle()
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("reading the webhook CA: %w", err)
	}
	if len(r.OwnKinds.Rules) == 0 {
		return reconcile.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: r.OwnKinds.Name}}))
	}
	desired := r.OwnKinds.Desired(r.Endpoint, ca)
	if err := r.Client.Apply(ctx, desired, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return reconcile.Result{}, fmt.Errorf("applying ValidatingWebhookConfiguration %s: %w", r.OwnKinds.Name, err)
	}
	return reconcile.Result{}, nil
}

// SetupWithManager watches the configuration by name and kicks one
// reconcile at start, so a missing configuration is created.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	kick := make(chan event.GenericEvent, 1)
	kick <- event.GenericEvent{Object: &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: r.OwnKinds.Name}}}
	named := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == r.OwnKinds.Name })
	return ctrl.NewControllerManagedBy(mgr).
		Named("webhookconfiguration").
		For(&admissionregistrationv1.ValidatingWebhookConfiguration{}, builder.WithPredicates(named)).
		WatchesRawSource(source.Channel(kick, &handler.EnqueueRequestForObject{})).
		Complete(r)
}
