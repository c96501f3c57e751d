package webhookconfig

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

	"github.com/portcullis-io/portcullis/internal/restore"
)

// FieldOwner is the field manager of the configurations.
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

// The reconciler changes only the configurations it renders, whose names
// are fixed (cmd/portcullis/app): not another product's webhooks.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations;mutatingwebhookconfigurations,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations;mutatingwebhookconfigurations,verbs=update;patch;delete,resourceNames=portcullis-mutate;portcullis-validate;portcullis-policy-validation;portcullis-policy-approval

// Reconcile puts every configuration as rendered: created when missing,
// replaced whole when it differs, deleted when not wanted. A server-side
// apply would only take back the fields the operator sets: an
// objectSelector or a matchCondition someone added would stay, theirs,
// and quietly keep requests from the webhooks.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	p, err := r.plan(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	retry := false
	for _, want := range p.want {
		err := r.put(ctx, want)
		switch {
		case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
			// The cache is behind the API server; the newer object's
			// event reconciles again, and so does the retry.
			retry = true
		case err != nil:
			return reconcile.Result{}, fmt.Errorf("putting %s: %w", describe(want), err)
		}
	}
	for _, o := range p.unwanted {
		if err := client.IgnoreNotFound(r.Client.Delete(ctx, o)); err != nil {
			return reconcile.Result{}, fmt.Errorf("deleting %s: %w", describe(o), err)
		}
	}
	if p.loading || retry {
		return reconcile.Result{RequeueAfter: notReadyRecheck}, nil
	}
	return reconcile.Result{}, nil
}

// Drift names each configuration that is not as Reconcile would put it:
// missing, different (edited, or not yet updated), or present though not
// wanted. None: the configurations are as rendered. The admission
// configurations are not compared while the engines load.
func (r *Reconciler) Drift(ctx context.Context) ([]string, error) {
	p, err := r.plan(ctx)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, want := range p.want {
		live := empty(want)
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), live)
		switch {
		case apierrors.IsNotFound(err):
			problems = append(problems, describe(want)+" is missing")
		case err != nil:
			return nil, err
		case !current(live, want):
			problems = append(problems, describe(want)+" differs from what the operator renders")
		}
	}
	for _, o := range p.unwanted {
		err := r.Client.Get(ctx, client.ObjectKeyFromObject(o), empty(o))
		switch {
		case err == nil:
			problems = append(problems, describe(o)+" exists but is not wanted (webhook off or no policy)")
		case !apierrors.IsNotFound(err):
			return nil, err
		}
	}
	return problems, nil
}

// plan is what the configurations should be: wanted ones as rendered,
// each with the digest of its rendering, and those that should not exist.
// loading: the engines are loading, so the admission configurations are
// in neither list and are left as they are.
type plan struct {
	want, unwanted []client.Object
	loading        bool
}

// plan renders every configuration from the CA, the endpoint, the rules
// and the overrides as they are now.
func (r *Reconciler) plan(ctx context.Context) (plan, error) {
	var p plan
	ca, err := r.CABundle()
	if err != nil {
		return p, fmt.Errorf("reading the webhook CA: %w", err)
	}
	ep := r.Endpoint
	var adm *Admission
	if r.Admission != nil {
		a := *r.Admission
		adm = &a
	}
	if r.Overrides != nil {
		if err := r.Overrides(ctx, adm, &ep); err != nil {
			return p, err
		}
	}
	validating := func(ac *admissionregistrationv1ac.ValidatingWebhookConfigurationApplyConfiguration, name string) error {
		if ac == nil {
			p.unwanted = append(p.unwanted, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}})
			return nil
		}
		var o admissionregistrationv1.ValidatingWebhookConfiguration
		if err := convert(ac, &o); err != nil {
			return err
		}
		if err := stamp(&o, o.Webhooks); err != nil {
			return err
		}
		p.want = append(p.want, &o)
		return nil
	}
	mutating := func(ac *admissionregistrationv1ac.MutatingWebhookConfigurationApplyConfiguration, name string) error {
		if ac == nil {
			p.unwanted = append(p.unwanted, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}})
			return nil
		}
		var o admissionregistrationv1.MutatingWebhookConfiguration
		if err := convert(ac, &o); err != nil {
			return err
		}
		if err := stamp(&o, o.Webhooks); err != nil {
			return err
		}
		p.want = append(p.want, &o)
		return nil
	}
	var own *admissionregistrationv1ac.ValidatingWebhookConfigurationApplyConfiguration
	if len(r.OwnKinds.Rules) > 0 {
		own = r.OwnKinds.Desired(ep, ca)
	}
	if err := validating(own, r.OwnKinds.Name); err != nil {
		return p, err
	}
	if r.OwnKinds.ApprovalName != "" {
		if err := mutating(r.OwnKinds.DesiredApproval(ep, ca), r.OwnKinds.ApprovalName); err != nil {
			return p, err
		}
	}
	if a := adm; a != nil {
		if a.Ready != nil && !a.Ready() {
			p.loading = true
			return p, nil
		}
		mut, val := a.Rules()
		if a.disabled(true) {
			mut = nil
		}
		if a.disabled(false) {
			val = nil
		}
		if err := mutating(a.DesiredMutating(ep, ca, mut), a.MutatingName); err != nil {
			return p, err
		}
		if err := validating(a.DesiredValidating(ep, ca, val), a.ValidatingName); err != nil {
			return p, err
		}
	}
	return p, nil
}

// put creates want, or replaces the live configuration with it whole
// unless it is current (restore.Replace): webhooks as rendered, our labels
// and digest set (others' labels and annotations kept, they decide
// nothing), and the other managers' claims dropped.
func (r *Reconciler) put(ctx context.Context, want client.Object) error {
	live := empty(want)
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), live); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		return r.Client.Create(ctx, want.DeepCopyObject().(client.Object), client.FieldOwner(FieldOwner))
	}
	if current(live, want) {
		return nil
	}
	o := want.DeepCopyObject().(client.Object)
	o.SetLabels(merged(live.GetLabels(), want.GetLabels()))
	o.SetAnnotations(merged(live.GetAnnotations(), want.GetAnnotations()))
	return restore.Replace(ctx, r.Client, o, live, FieldOwner)
}

// current reports whether live is want as rendered: our labels, the
// digest of this rendering, and no other manager's write since the
// operator's.
func current(live, want client.Object) bool {
	for k, v := range want.GetLabels() {
		if live.GetLabels()[k] != v {
			return false
		}
	}
	return restore.Current(live, HashAnnotation, want.GetAnnotations()[HashAnnotation], FieldOwner)
}

// HashAnnotation is the digest of the rendering a configuration is.
const HashAnnotation = "portcullis.io/rendering-hash"

// stamp annotates o with the digest of its webhooks as rendered.
func stamp(o client.Object, webhooks any) error {
	hash, err := restore.Digest(webhooks)
	if err != nil {
		return err
	}
	o.SetAnnotations(merged(o.GetAnnotations(), map[string]string{HashAnnotation: hash}))
	return nil
}

// merged is base with over's entries set.
func merged(base, over map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = make(map[string]string, len(over))
	}
	maps.Copy(out, over)
	return out
}

// convert turns a rendered apply configuration into the object it
// describes.
func convert(ac any, o client.Object) error {
	b, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, o)
}

// empty is a new object of o's type, to read into.
func empty(o client.Object) client.Object {
	return reflect.New(reflect.TypeOf(o).Elem()).Interface().(client.Object)
}

func describe(o client.Object) string {
	kind := "ValidatingWebhookConfiguration"
	if _, ok := o.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
		kind = "MutatingWebhookConfiguration"
	}
	return kind + " " + o.GetName()
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
