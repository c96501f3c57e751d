package webhookconfig

import (
	"cmp"
	"context"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
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

// ManagedByLabel marks the configurations the operator keeps.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// Endpoint says how the API server reaches the webhook server: a URL (a
// local or out-of-cluster operator) or a Service (in a cluster).
type Endpoint struct {
	// URL is the https base URL; paths are appended.
	URL string
	// ServiceNamespace, ServiceName, ServicePort name the webhook Service.
	ServiceNamespace, ServiceName string
	ServicePort                   int32
}

// BaseURL is the endpoint as an https base URL: URL, or the Service's
// cluster DNS name.
func (e Endpoint) BaseURL() string {
	if e.URL != "" {
		return e.URL
	}
	port := e.ServicePort
	if port == 0 {
		port = 443
	}
	return fmt.Sprintf("https://%s.%s.svc:%d", e.ServiceName, e.ServiceNamespace, port)
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

func ruleConfigs(rules []admissionregistrationv1.RuleWithOperations) []*admissionregistrationv1ac.RuleWithOperationsApplyConfiguration {
	out := make([]*admissionregistrationv1ac.RuleWithOperationsApplyConfiguration, 0, len(rules))
	for _, r := range rules {
		rule := admissionregistrationv1ac.RuleWithOperations().WithOperations(r.Operations...).
			WithAPIGroups(r.APIGroups...).WithAPIVersions(r.APIVersions...).WithResources(r.Resources...)
		if r.Scope != nil {
			rule = rule.WithScope(*r.Scope)
		}
		out = append(out, rule)
	}
	return out
}

// webhook is what a MutatingWebhook and a ValidatingWebhook apply
// configuration have in common, each method returning the builder itself.
type webhook[W any] interface {
	WithName(string) W
	WithClientConfig(*admissionregistrationv1ac.WebhookClientConfigApplyConfiguration) W
	WithRules(...*admissionregistrationv1ac.RuleWithOperationsApplyConfiguration) W
	WithFailurePolicy(admissionregistrationv1.FailurePolicyType) W
	WithTimeoutSeconds(int32) W
	WithSideEffects(admissionregistrationv1.SideEffectClass) W
	WithAdmissionReviewVersions(...string) W
	WithMatchPolicy(admissionregistrationv1.MatchPolicyType) W
}

// withCommon sets what every webhook the operator renders has: its name
// and endpoint, its rules, failure policy and timeout; no side effects,
// AdmissionReview v1, and Equivalent matching: a request through another
// version of a resource that a rule names is sent, converted to the
// version the rule names.
func withCommon[W webhook[W]](wh W, name string, cc *admissionregistrationv1ac.WebhookClientConfigApplyConfiguration,
	rules []admissionregistrationv1.RuleWithOperations, fp admissionregistrationv1.FailurePolicyType, timeout int32) W {
	return wh.WithName(name).WithClientConfig(cc).WithRules(ruleConfigs(rules)...).
		WithFailurePolicy(fp).WithTimeoutSeconds(timeout).
		WithSideEffects(admissionregistrationv1.SideEffectClassNone).
		WithAdmissionReviewVersions("v1").
		WithMatchPolicy(admissionregistrationv1.Equivalent)
}

// OwnKinds describes the webhooks for Portcullis's own kinds: the
// validating one, and the mutating one that checks and records who may
// grant what the kinds that grant permissions or identities grant.
type OwnKinds struct {
	// Name of the ValidatingWebhookConfiguration.
	Name string
	// Path served by the operator.
	Path string
	// Rules: which of our kinds are validated (only groups that are on).
	Rules []admissionregistrationv1.RuleWithOperations
	// ApprovalName, ApprovalPath and ApprovalRules: the
	// MutatingWebhookConfiguration of the approval, its path and the
	// kinds it covers (none: no configuration).
	ApprovalName  string
	ApprovalPath  string
	ApprovalRules []admissionregistrationv1.RuleWithOperations
}

// ownKindsTimeoutSeconds: the escalation check makes a few
// SubjectAccessReviews, each a millisecond or so on a healthy API server.
const ownKindsTimeoutSeconds = 10

// Desired renders the own-kinds configuration. Its failure policy is Fail:
// a policy that cannot be checked is not accepted. Only CREATE and UPDATE
// are sent, so deleting a policy never depends on the webhook.
func (o OwnKinds) Desired(ep Endpoint, ca []byte) *admissionregistrationv1ac.ValidatingWebhookConfigurationApplyConfiguration {
	wh := withCommon(admissionregistrationv1ac.ValidatingWebhook(), "policies.portcullis.io",
		ep.clientConfig(o.Path, ca), o.Rules, admissionregistrationv1.Fail, ownKindsTimeoutSeconds)
	return admissionregistrationv1ac.ValidatingWebhookConfiguration(o.Name).
		WithLabels(map[string]string{ManagedByLabel: "portcullis"}).
		WithWebhooks(wh)
}

// DesiredApproval renders the approval's configuration, or nil when no
// kind needs it. Its failure policy is Fail: what cannot be checked is
// not accepted. It runs again after later mutating webhooks (IfNeeded),
// so the approval is of the object as it is stored.
func (o OwnKinds) DesiredApproval(ep Endpoint, ca []byte) *admissionregistrationv1ac.MutatingWebhookConfigurationApplyConfiguration {
	if len(o.ApprovalRules) == 0 {
		return nil
	}
	wh := withCommon(admissionregistrationv1ac.MutatingWebhook(), "approval.portcullis.io",
		ep.clientConfig(o.ApprovalPath, ca), o.ApprovalRules, admissionregistrationv1.Fail, ownKindsTimeoutSeconds).
		WithReinvocationPolicy(admissionregistrationv1.IfNeededReinvocationPolicy)
	return admissionregistrationv1ac.MutatingWebhookConfiguration(o.ApprovalName).
		WithLabels(map[string]string{ManagedByLabel: "portcullis"}).
		WithWebhooks(wh)
}

// Admission describes the policy-driven mutating and validating webhooks.
type Admission struct {
	// MutatingName and ValidatingName name the two configurations.
	MutatingName, ValidatingName string
	// MutatePath and ValidatePath are served by the operator.
	MutatePath, ValidatePath string
	// MutatingFailurePolicy (default Ignore) and ValidatingFailurePolicy
	// (default Fail).
	MutatingFailurePolicy, ValidatingFailurePolicy admissionregistrationv1.FailurePolicyType
	// MutatingTimeoutSeconds (default 3) and ValidatingTimeoutSeconds (default 5).
	MutatingTimeoutSeconds, ValidatingTimeoutSeconds int32
	// ExcludedNamespaces are never sent to the webhooks: kube-system and the
	// operator's namespace at least, so that the cluster and Portcullis
	// itself always stay repairable.
	ExcludedNamespaces []string
	// ExcludedUsers are never sent: the operator's own service account.
	ExcludedUsers []string
	// MutatingDisabled and ValidatingDisabled turn a webhook off.
	MutatingDisabled, ValidatingDisabled bool
	// Webhook is the WebhookBundle's spec.admission.execution Webhook:
	// no policy is executed natively by the API server.
	Webhook bool
	// Rules returns the union of what the loaded policies match, for each
	// webhook: no policy, no call.
	Rules func() (mutating, validating []admissionregistrationv1.RuleWithOperations)
	// Ready reports whether Rules are those of every policy: until the
	// engines serve their first complete snapshot, the admission
	// configurations are left as they are, since rules from a partial
	// snapshot would stop the API server calling the webhooks for the
	// policies not loaded yet (a new leader would open the gate). Nil is
	// always ready.
	Ready func() bool
}

// Defaults, as the issue and most policy engines choose them: a mutation
// that cannot be applied is skipped (Ignore, short timeout) so the cluster
// keeps working; a validation that cannot be checked rejects (Fail).
const (
	DefaultMutatingTimeoutSeconds   = 3
	DefaultValidatingTimeoutSeconds = 5
)

// excludedGroupsCondition keeps our own kinds out of policy-driven
// admission: a policy can never stop an admin from fixing policies. It
// names portcullis.io and its subdomains exactly: a group such as
// notportcullis.io is someone else's, and its policies apply.
const excludedGroupsCondition = "!(request.resource.group == 'portcullis.io' || request.resource.group.endsWith('.portcullis.io'))"

// ExclusionConditions are the match conditions that keep what the
// operator excludes out of policy-driven admission, for the webhooks and
// the generated native policies alike: our own kinds, and the excluded
// users.
func (a Admission) ExclusionConditions() []admissionregistrationv1.MatchCondition {
	conds := []admissionregistrationv1.MatchCondition{{Name: "not-portcullis-kinds", Expression: excludedGroupsCondition}}
	if len(a.ExcludedUsers) > 0 {
		conds = append(conds, admissionregistrationv1.MatchCondition{Name: "not-excluded-users",
			Expression: "!(request.userInfo.username in " + celList(a.ExcludedUsers) + ")"})
	}
	return conds
}

func (a Admission) common() (*metav1ac.LabelSelectorApplyConfiguration, []*admissionregistrationv1ac.MatchConditionApplyConfiguration) {
	ns := metav1ac.LabelSelector().WithMatchExpressions(metav1ac.LabelSelectorRequirement().
		WithKey("kubernetes.io/metadata.name").WithOperator(metav1.LabelSelectorOpNotIn).WithValues(a.ExcludedNamespaces...))
	var conds []*admissionregistrationv1ac.MatchConditionApplyConfiguration
	for _, c := range a.ExclusionConditions() {
		conds = append(conds, admissionregistrationv1ac.MatchCondition().WithName(c.Name).WithExpression(c.Expression))
	}
	return ns, conds
}

// DesiredMutating renders the mutating configuration, or nil when no
// policy needs it.
func (a Admission) DesiredMutating(ep Endpoint, ca []byte, rules []admissionregistrationv1.RuleWithOperations) *admissionregistrationv1ac.MutatingWebhookConfigurationApplyConfiguration {
	if len(rules) == 0 {
		return nil
	}
	ns, conds := a.common()
	wh := withCommon(admissionregistrationv1ac.MutatingWebhook(), "mutate.portcullis.io",
		ep.clientConfig(a.MutatePath, ca), rules,
		cmp.Or(a.MutatingFailurePolicy, admissionregistrationv1.Ignore),
		cmp.Or(a.MutatingTimeoutSeconds, DefaultMutatingTimeoutSeconds)).
		// Mutations are idempotent, so being called again after another
		// webhook's change is safe and keeps our changes in place.
		WithReinvocationPolicy(admissionregistrationv1.IfNeededReinvocationPolicy).
		WithNamespaceSelector(ns).
		WithMatchConditions(conds...)
	return admissionregistrationv1ac.MutatingWebhookConfiguration(a.MutatingName).
		WithLabels(map[string]string{ManagedByLabel: "portcullis"}).
		WithWebhooks(wh)
}

// DesiredValidating renders the validating configuration, or nil when no
// policy needs it.
func (a Admission) DesiredValidating(ep Endpoint, ca []byte, rules []admissionregistrationv1.RuleWithOperations) *admissionregistrationv1ac.ValidatingWebhookConfigurationApplyConfiguration {
	if len(rules) == 0 {
		return nil
	}
	ns, conds := a.common()
	wh := withCommon(admissionregistrationv1ac.ValidatingWebhook(), "validate.portcullis.io",
		ep.clientConfig(a.ValidatePath, ca), rules,
		cmp.Or(a.ValidatingFailurePolicy, admissionregistrationv1.Fail),
		cmp.Or(a.ValidatingTimeoutSeconds, DefaultValidatingTimeoutSeconds)).
		WithNamespaceSelector(ns).
		WithMatchConditions(conds...)
	return admissionregistrationv1ac.ValidatingWebhookConfiguration(a.ValidatingName).
		WithLabels(map[string]string{ManagedByLabel: "portcullis"}).
		WithWebhooks(wh)
}

// celList renders strings as a CEL list literal; strconv-style quoting is
// valid CEL string syntax.
func celList(items []string) string {
	out := "["
	for i, s := range items {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", s)
	}
	return out + "]"
}

// Reconciler applies the desired configurations and restores them when
// they are edited or deleted. It runs on the leader only.
type Reconciler struct {
	Client   client.Client
	OwnKinds OwnKinds
	// Admission is nil when the admission group is off.
	Admission *Admission
	Endpoint  Endpoint
	// CABundle returns the current CA bundle (it changes on rotation).
	CABundle func() ([]byte, error)
	// Changes, when set, receives an event whenever the loaded policies
	// change, so the rules follow them.
	Changes <-chan event.GenericEvent
	// Overrides, when set, adjusts the admission webhooks (nil when the
	// admission group is off) and the endpoint from the cluster's
	// configuration (the WebhookBundle) at every reconcile; Watch is that
	// object's kind, so a change reconciles.
	Overrides func(ctx context.Context, a *Admission, ep *Endpoint) error
	Watch     client.Object
}

// disabled reports whether Overrides turned a webhook off.
func (a *Admission) disabled(mutating bool) bool {
	if mutating {
		return a.MutatingDisabled
	}
	return a.ValidatingDisabled
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations;mutatingwebhookconfigurations,verbs=get;list;watch;create;update;patch;delete

// Reconcile applies every configuration. Server-side apply with forced
// ownership is idempotent and undoes edits to the fields we own.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	ca, err := r.CABundle()
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("reading the webhook CA: %w", err)
	}
	opts := []client.ApplyOption{client.FieldOwner(FieldOwner), client.ForceOwnership}
	ep := r.Endpoint
	var adm *Admission
	if r.Admission != nil {
		a := *r.Admission
		adm = &a
	}
	if r.Overrides != nil {
		if err := r.Overrides(ctx, adm, &ep); err != nil {
			return reconcile.Result{}, err
		}
	}
	if len(r.OwnKinds.Rules) == 0 {
		if err := r.deleteValidating(ctx, r.OwnKinds.Name); err != nil {
			return reconcile.Result{}, err
		}
	} else if err := r.Client.Apply(ctx, r.OwnKinds.Desired(ep, ca), opts...); err != nil {
		return reconcile.Result{}, fmt.Errorf("applying ValidatingWebhookConfiguration %s: %w", r.OwnKinds.Name, err)
	}
	if r.OwnKinds.ApprovalName != "" {
		if m := r.OwnKinds.DesiredApproval(ep, ca); m != nil {
			if err := r.Client.Apply(ctx, m, opts...); err != nil {
				return reconcile.Result{}, fmt.Errorf("applying MutatingWebhookConfiguration %s: %w", r.OwnKinds.ApprovalName, err)
			}
		} else if err := client.IgnoreNotFound(r.Client.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: r.OwnKinds.ApprovalName}})); err != nil {
			return reconcile.Result{}, err
		}
	}
	if a := adm; a != nil {
		if a.Ready != nil && !a.Ready() {
			return reconcile.Result{RequeueAfter: notReadyRecheck}, nil
		}
		mut, val := a.Rules()
		if a.disabled(true) {
			mut = nil
		}
		if a.disabled(false) {
			val = nil
		}
		if m := a.DesiredMutating(ep, ca, mut); m != nil {
			if err := r.Client.Apply(ctx, m, opts...); err != nil {
				return reconcile.Result{}, fmt.Errorf("applying MutatingWebhookConfiguration %s: %w", a.MutatingName, err)
			}
		} else if err := client.IgnoreNotFound(r.Client.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: a.MutatingName}})); err != nil {
			return reconcile.Result{}, err
		}
		if v := a.DesiredValidating(ep, ca, val); v != nil {
			if err := r.Client.Apply(ctx, v, opts...); err != nil {
				return reconcile.Result{}, fmt.Errorf("applying ValidatingWebhookConfiguration %s: %w", a.ValidatingName, err)
			}
		} else if err := r.deleteValidating(ctx, a.ValidatingName); err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{}, nil
}

func (r *Reconciler) deleteValidating(ctx context.Context, name string) error {
	return client.IgnoreNotFound(r.Client.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}))
}

// notReadyRecheck is how soon the admission configurations are looked at
// again while the engines load their first snapshot.
const notReadyRecheck = time.Second

// reconcileKey is the single key every event maps to: the reconciler
// always converges all configurations at once.
var reconcileKey = reconcile.Request{}

// SetupWithManager watches our configurations by name and kicks one
// reconcile at start, so missing configurations are created.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	names := map[string]bool{r.OwnKinds.Name: true}
	if r.OwnKinds.ApprovalName != "" {
		names[r.OwnKinds.ApprovalName] = true
	}
	if r.Admission != nil {
		names[r.Admission.MutatingName] = true
		names[r.Admission.ValidatingName] = true
	}
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool { return names[o.GetName()] })
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{reconcileKey} })
	kick := make(chan event.GenericEvent, 1)
	kick <- event.GenericEvent{Object: &admissionregistrationv1.ValidatingWebhookConfiguration{}}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("webhookconfiguration").
		For(&admissionregistrationv1.ValidatingWebhookConfiguration{}, builder.WithPredicates(ours)).
		Watches(&admissionregistrationv1.MutatingWebhookConfiguration{}, one, builder.WithPredicates(ours)).
		WatchesRawSource(source.Channel(kick, one))
	if r.Changes != nil {
		b = b.WatchesRawSource(source.Channel(r.Changes, one))
	}
	if r.Watch != nil {
		b = b.Watches(r.Watch, one)
	}
	return b.Complete(r)
}
