package admission

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	engine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/restore"
)

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingadmissionpolicies;validatingadmissionpolicybindings;mutatingadmissionpolicies;mutatingadmissionpolicybindings,verbs=get;list;watch;create;update;patch;delete

// NativeSettings is what native execution reads from the cluster's
// configuration at every reconcile: whether it is on, what the operator
// keeps out of all policy-driven admission, and which webhook is off.
type NativeSettings struct {
	// Native is false for WebhookBundle spec.admission.execution Webhook.
	Native     bool
	Exclusions engine.Exclusions
	// MutatingDisabled and ValidatingDisabled: the WebhookBundle turns
	// that webhook off, and with it the policies of its kind, natively
	// executed ones too.
	MutatingDisabled, ValidatingDisabled bool
	// MutatingWebhook and ValidatingWebhook name the webhook
	// configurations: a policy taken back from the API server keeps its
	// generated objects until the configuration covers its rules.
	MutatingWebhook, ValidatingWebhook string
}

// DefaultHandOverGrace is how long the webhook keeps serving a policy
// after its generated objects reached the operator's cache, and keeps
// the generated objects of a policy it took back: the API server
// refreshes its compiled admission policies once a second, and its
// webhook configurations as their informer delivers them, so both serve
// for a while rather than neither.
const DefaultHandOverGrace = 3 * time.Second

// nativeReconciler generates, for every policy the API server can
// evaluate itself, its ValidatingAdmissionPolicy or
// MutatingAdmissionPolicy and binding; keeps them (restores them when
// edited or deleted, removes them when not wanted); hands each policy over
// from the webhook once the API server holds its native form; and writes
// status.execution of every policy. It runs on every replica, each
// deciding from its own cache what its webhook serves; only the leader
// writes.
type nativeReconciler struct {
	client client.Client
	// reader reads the API server directly, for what the cache lags.
	reader      client.Reader
	mutations   *engine.MutationRegistry
	validations *engine.ValidationRegistry
	exceptions  *engine.ExceptionRegistry
	ready       func() bool
	settings    func(ctx context.Context) (NativeSettings, error)
	// servesVAP and servesMAP: the API server serves the native kinds
	// (admissionregistration.k8s.io/v1).
	servesVAP, servesMAP bool
	grace                time.Duration
	now                  func() time.Time
	// changed tells the webhook configuration reconciler that what the
	// webhook serves changed.
	changed func()
	// elected is set once this replica leads: only the leader writes.
	elected atomic.Bool

	mu sync.Mutex
	// seen is when this replica first saw each generated object's digest
	// in its cache (name/digest).
	seen map[string]time.Time
	// unwanted is when the leader first found a generated object whose
	// policy the webhook took back (name).
	unwanted map[string]time.Time
}

// nativeKey is the one key every event maps to: the reconciler always
// converges every policy at once (mutations depend on each other).
var nativeKey = reconcile.Request{NamespacedName: client.ObjectKey{Name: "native"}}

// decision is one policy's execution, and its generated objects.
type decision struct {
	status  admissionv1alpha1.ExecutionStatus
	objects []client.Object // the policy and its binding; nil for the webhook
	hash    string
	// rules are the policy's rules, which the webhook configuration
	// covers before a policy taken back loses its generated objects.
	rules []admissionregistrationv1.RuleWithOperations
	// disabled: the policy's webhook is off; its generated objects go
	// at once.
	disabled bool
}

func (r *nativeReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	if !r.ready() {
		// The admission gate kicks again once every policy is loaded:
		// deciding before would hand over mutations as if they shared
		// requests with none.
		return reconcile.Result{}, nil
	}
	settings, err := r.settings(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := r.now()
	var wake time.Time
	soon := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}

	vals := map[string]validationEntry{}
	r.validations.Each(func(name string, p *engine.CompiledValidation, err error) { vals[name] = validationEntry{p, err} })
	muts := map[string]mutationEntry{}
	r.mutations.Each(func(name string, p *engine.CompiledMutation, err error) { muts[name] = mutationEntry{p, err} })
	served := servedMutations(muts)

	decisions := map[schema.GroupKind]map[string]*decision{
		{Kind: engine.KindValidationPolicy}: {}, {Kind: engine.KindMutationPolicy}: {},
	}
	for name, v := range vals {
		d := &decision{}
		decisions[schema.GroupKind{Kind: engine.KindValidationPolicy}][name] = d
		if v.p != nil {
			d.rules = v.p.Rules()
		}
		err := v.err
		if err == nil && v.p != nil {
			err = v.p.ExpressionErr() // served by the webhook, and Invalid
		}
		if !r.webhookUnless(d, settings, settings.ValidatingDisabled, v.p != nil, err, r.servesVAP, "ValidatingAdmissionPolicy") {
			continue
		}
		exc, next := r.exceptions.For(engine.KindValidationPolicy, name, now)
		soon(next)
		pol, bind, err := engine.NativeValidation(v.p, exc, settings.Exclusions)
		r.generated(d, err, "ValidatingAdmissionPolicy", pol, bind)
	}
	for name, m := range muts {
		d := &decision{}
		decisions[schema.GroupKind{Kind: engine.KindMutationPolicy}][name] = d
		if m.p != nil {
			d.rules = m.p.Rules()
		}
		if !r.webhookUnless(d, settings, settings.MutatingDisabled, m.p != nil, m.err, r.servesMAP, "MutatingAdmissionPolicy") {
			continue
		}
		// The API server applies MutatingAdmissionPolicies in no defined
		// order; MutationPolicies apply by spec.order. A policy that shares
		// requests with another stays on the webhook, which keeps the order.
		if other := overlapping(name, m.p, served); other != "" {
			d.status = webhookStatus(admissionv1alpha1.ReasonNotExpressible, fmt.Sprintf(
				"spec.match: it may match the same requests as MutationPolicy %s, and the API server applies MutatingAdmissionPolicies in no defined order, while MutationPolicies apply by spec.order", other))
			continue
		}
		exc, next := r.exceptions.For(engine.KindMutationPolicy, name, now)
		soon(next)
		pol, bind, err := engine.NativeMutation(m.p, exc, settings.Exclusions)
		r.generated(d, err, "MutatingAdmissionPolicy", pol, bind)
	}

	// Which generated objects the API server holds, as this replica sees
	// them; the leader makes them so.
	existing, err := r.listGenerated(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	if r.elected.Load() {
		t, err := r.converge(ctx, decisions, existing, settings, now)
		if err != nil {
			return reconcile.Result{}, err
		}
		soon(t)
	}

	// Hand over what the API server has held, as generated, for the grace.
	nativeVals, nativeMuts := map[string]*engine.CompiledValidation{}, map[string]*engine.CompiledMutation{}
	r.mu.Lock()
	seen := map[string]time.Time{}
	for gk, ds := range decisions {
		for name, d := range ds {
			if d.objects == nil {
				continue
			}
			held := true
			for _, o := range d.objects {
				if !current(existing[objectKey(o)], o, d.hash) {
					held = false
				}
			}
			if !held {
				d.status = webhookStatus(admissionv1alpha1.ReasonHandingOver, "its "+kindOf(d.objects[0])+" "+d.objects[0].GetName()+
					" is generated; the webhook serves the policy until the API server holds it")
				continue
			}
			key := d.objects[0].GetName() + "/" + string(d.objects[0].GetOwnerReferences()[0].UID) + "/" + d.hash
			first, ok := r.seen[key]
			if !ok {
				first = now
			}
			seen[key] = first
			if since := now.Sub(first); since < r.grace {
				soon(first.Add(r.grace))
				d.status = webhookStatus(admissionv1alpha1.ReasonHandingOver, "its "+kindOf(d.objects[0])+" "+d.objects[0].GetName()+
					" is in the API server; the webhook serves the policy too until the API server has loaded it")
				continue
			}
			if gk.Kind == engine.KindValidationPolicy {
				nativeVals[name] = vals[name].p
			} else {
				nativeMuts[name] = muts[name].p
			}
		}
	}
	r.seen = seen
	r.mu.Unlock()
	r.validations.SetNative(nativeVals)
	r.mutations.SetNative(nativeMuts)
	r.changed()

	if r.elected.Load() {
		gens := map[schema.GroupKind]map[string]int64{{Kind: engine.KindValidationPolicy}: {}, {Kind: engine.KindMutationPolicy}: {}}
		for n, e := range vals {
			if e.p != nil {
				gens[schema.GroupKind{Kind: engine.KindValidationPolicy}][n] = e.p.Generation
			}
		}
		for n, p := range served {
			gens[schema.GroupKind{Kind: engine.KindMutationPolicy}][n] = p.Generation
		}
		if err := r.writeStatus(ctx, decisions, gens); err != nil {
			return reconcile.Result{}, err
		}
	}
	if wake.IsZero() {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{RequeueAfter: max(wake.Sub(now), 100*time.Millisecond)}, nil
}

// webhookUnless sets d to the webhook unless the policy may be executed
// natively, which it reports.
func (r *nativeReconciler) webhookUnless(d *decision, s NativeSettings, disabled, served bool, err error, kindServed bool, kind string) bool {
	switch {
	case disabled:
		d.status = webhookStatus(admissionv1alpha1.ReasonDisabled, "the WebhookBundle turns the webhook of its kind off: neither it nor the API server applies the policy")
		d.disabled = true
	case !served || err != nil:
		msg := "it does not compile"
		if err != nil {
			msg += ": " + err.Error()
		}
		d.status = webhookStatus(admissionv1alpha1.ReasonInvalid, msg+"; the webhook applies its failurePolicy")
	case !s.Native:
		d.status = webhookStatus(admissionv1alpha1.ReasonRequested, "the WebhookBundle's spec.admission.execution is Webhook")
	case !kindServed:
		d.status = webhookStatus(admissionv1alpha1.ReasonNotServed, "the API server does not serve admissionregistration.k8s.io/v1 "+kind)
	default:
		return true
	}
	return false
}

// generated records the native form, or why there is none.
func (r *nativeReconciler) generated(d *decision, err error, kind string, objs ...client.Object) {
	if err != nil {
		d.status = webhookStatus(admissionv1alpha1.ReasonNotExpressible, err.Error())
		return
	}
	d.objects = objs
	d.hash = objs[0].GetAnnotations()[engine.HashAnnotation]
	d.status = admissionv1alpha1.ExecutionStatus{Mode: admissionv1alpha1.ExecutionNative, Reason: admissionv1alpha1.ReasonGenerated,
		Message: fmt.Sprintf("evaluated by the API server as %s %s and its binding", kind, objs[0].GetName())}
}

func webhookStatus(reason, msg string) admissionv1alpha1.ExecutionStatus {
	return admissionv1alpha1.ExecutionStatus{Mode: admissionv1alpha1.ExecutionWebhook, Reason: reason, Message: msg}
}

// overlapping names another mutation policy that may match requests p
// matches, "" when none does.
func overlapping(name string, p *engine.CompiledMutation, all map[string]*engine.CompiledMutation) string {
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n != name && engine.RulesOverlap(p.Rules(), all[n].Rules()) {
			return n
		}
	}
	return ""
}

// validationEntry and mutationEntry are registry entries: a compiled
// policy (nil when not served) and its configuration error.
type validationEntry struct {
	p   *engine.CompiledValidation
	err error
}

type mutationEntry struct {
	p   *engine.CompiledMutation
	err error
}

func servedMutations(m map[string]mutationEntry) map[string]*engine.CompiledMutation {
	out := make(map[string]*engine.CompiledMutation, len(m))
	for n, e := range m {
		if e.p != nil {
			out[n] = e.p
		}
	}
	return out
}

// generatedKinds are the native kinds, each with its list.
var generatedKinds = []struct {
	kind string
	list func() client.ObjectList
}{
	{"ValidatingAdmissionPolicy", func() client.ObjectList { return &admissionregistrationv1.ValidatingAdmissionPolicyList{} }},
	{"ValidatingAdmissionPolicyBinding", func() client.ObjectList { return &admissionregistrationv1.ValidatingAdmissionPolicyBindingList{} }},
	{"MutatingAdmissionPolicy", func() client.ObjectList { return &admissionregistrationv1.MutatingAdmissionPolicyList{} }},
	{"MutatingAdmissionPolicyBinding", func() client.ObjectList { return &admissionregistrationv1.MutatingAdmissionPolicyBindingList{} }},
}

func (r *nativeReconciler) served(kind string) bool {
	if strings.HasPrefix(kind, "Mutating") {
		return r.servesMAP
	}
	return r.servesVAP
}

// generatedSelector selects the generated objects.
func generatedSelector() labels.Selector {
	req, _ := labels.NewRequirement(engine.GeneratedLabel, selection.Exists, nil)
	return labels.NewSelector().Add(*req)
}

// listGenerated returns the generated objects in the cache by kind/name.
func (r *nativeReconciler) listGenerated(ctx context.Context) (map[string]client.Object, error) {
	out := map[string]client.Object{}
	for _, k := range generatedKinds {
		if !r.served(k.kind) {
			continue
		}
		list := k.list()
		if err := r.client.List(ctx, list, client.MatchingLabelsSelector{Selector: generatedSelector()}); err != nil {
			return nil, fmt.Errorf("listing %ss: %w", k.kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			o := it.(client.Object)
			out[k.kind+"/"+o.GetName()] = o
		}
	}
	return out, nil
}

func kindOf(o client.Object) string {
	switch o.(type) {
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		return "ValidatingAdmissionPolicy"
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return "ValidatingAdmissionPolicyBinding"
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		return "MutatingAdmissionPolicy"
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		return "MutatingAdmissionPolicyBinding"
	}
	return fmt.Sprintf("%T", o)
}

func objectKey(o client.Object) string { return kindOf(o) + "/" + o.GetName() }

// converge writes every generated object that is wanted (restoring any
// edit) and deletes those that are not: at once when their policy is gone
// or its webhook is off, and, when the webhook took the policy back, once
// the grace has passed and the webhook configuration covers the policy's
// rules. A policy whose objects the API server refuses is served by the
// webhook, its status saying why; the others still converge. It returns
// when to look again.
func (r *nativeReconciler) converge(ctx context.Context, decisions map[schema.GroupKind]map[string]*decision, existing map[string]client.Object, s NativeSettings, now time.Time) (time.Time, error) {
	wanted := map[string]bool{}
	for _, ds := range decisions {
		for _, d := range ds {
			for _, o := range d.objects {
				key := objectKey(o)
				e, ok := existing[key]
				if !ok {
					// Not listed: someone may have taken the label off.
					e = o.DeepCopyObject().(client.Object)
					switch err := r.client.Get(ctx, client.ObjectKeyFromObject(o), e); {
					case apierrors.IsNotFound(err):
						e = nil
					case err != nil:
						return time.Time{}, err
					}
				}
				if e != nil && current(e, o, d.hash) {
					continue
				}
				if err := r.put(ctx, o, e); err != nil {
					logf.FromContext(ctx).Error(err, "the API server refused a generated object; the webhook serves its policy", "object", key)
					d.status = webhookStatus(admissionv1alpha1.ReasonRefused, fmt.Sprintf("the API server refused %s %s: %v", kindOf(o), o.GetName(), err))
					d.objects = nil
					break
				}
			}
			for _, o := range d.objects {
				wanted[objectKey(o)] = true
			}
		}
	}
	var wake time.Time
	r.mu.Lock()
	defer r.mu.Unlock()
	unwanted := map[string]time.Time{}
	for key, o := range existing {
		if wanted[key] {
			continue
		}
		src := o.GetAnnotations()[engine.SourceAnnotation]
		kind, webhook := engine.KindValidationPolicy, s.ValidatingWebhook
		if strings.HasPrefix(key, "Mutating") {
			kind, webhook = engine.KindMutationPolicy, s.MutatingWebhook
		}
		if d, stillThere := decisions[schema.GroupKind{Kind: kind}][src]; stillThere && !d.disabled {
			// Taken back: the webhook serves the policy already; the
			// generated objects go once the API server calls it for the
			// policy's requests: the grace, for the API server to load the
			// webhook configuration, counts from when it covers them.
			covered, err := r.covered(ctx, kind, webhook, d.rules)
			if err != nil {
				return time.Time{}, err
			}
			if !covered {
				if t := now.Add(time.Second); wake.IsZero() || t.Before(wake) {
					wake = t
				}
				continue
			}
			first, ok := r.unwanted[key]
			if !ok {
				first = now
			}
			unwanted[key] = first
			if now.Sub(first) < r.grace {
				t := first.Add(r.grace)
				if !t.After(now) {
					t = now.Add(time.Second)
				}
				if wake.IsZero() || t.Before(wake) {
					wake = t
				}
				continue
			}
		}
		if err := client.IgnoreNotFound(r.client.Delete(ctx, o)); err != nil {
			return time.Time{}, fmt.Errorf("deleting %s: %w", key, err)
		}
		delete(unwanted, key)
		logf.FromContext(ctx).Info("deleted a generated object no policy wants", "object", key, "policy", src)
	}
	r.unwanted = unwanted
	return wake, nil
}

// covered reports whether the webhook configuration name (of the kind's
// webhook) has a rule for every resource of rules.
func (r *nativeReconciler) covered(ctx context.Context, kind, name string, rules []admissionregistrationv1.RuleWithOperations) (bool, error) {
	if len(rules) == 0 {
		return true, nil
	}
	var have []admissionregistrationv1.RuleWithOperations
	if kind == engine.KindMutationPolicy {
		var c admissionregistrationv1.MutatingWebhookConfiguration
		if err := r.client.Get(ctx, client.ObjectKey{Name: name}, &c); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, w := range c.Webhooks {
			have = append(have, w.Rules...)
		}
	} else {
		var c admissionregistrationv1.ValidatingWebhookConfiguration
		if err := r.client.Get(ctx, client.ObjectKey{Name: name}, &c); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, w := range c.Webhooks {
			have = append(have, w.Rules...)
		}
	}
	return engine.RulesCovered(have, rules), nil
}

// current reports whether existing is desired as generated: same digest,
// owned by the same policy object, and not edited since.
func current(existing, desired client.Object, hash string) bool {
	return restore.Current(existing, engine.HashAnnotation, hash, nativeFieldOwner) && sameOwner(existing, desired) &&
		existing.GetLabels()[engine.GeneratedLabel] != ""
}

// nativeFieldOwner is the field manager of generated objects.
const nativeFieldOwner = "portcullis"

// put creates the desired object, or replaces existing with it whole
// (restore.Replace).
func (r *nativeReconciler) put(ctx context.Context, desired, existing client.Object) error {
	if existing == nil {
		err := r.client.Create(ctx, desired.DeepCopyObject().(client.Object), client.FieldOwner(nativeFieldOwner))
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		// Not in the cache yet: read it from the API server.
		existing = desired.DeepCopyObject().(client.Object)
		if err := r.reader.Get(ctx, client.ObjectKeyFromObject(desired), existing); err != nil {
			return err
		}
	}
	return restore.Replace(ctx, r.client, desired, existing, nativeFieldOwner)
}

// sameOwner: the generated object names the policy object it came from
// (a policy deleted and created again has a new UID).
func sameOwner(existing, desired client.Object) bool {
	e, d := existing.GetOwnerReferences(), desired.GetOwnerReferences()
	return len(e) == len(d) && (len(d) == 0 || e[0].UID == d[0].UID)
}

// writeStatus writes status.execution of every policy whose decision
// changed, for the generation it was compiled from.
func (r *nativeReconciler) writeStatus(ctx context.Context, decisions map[schema.GroupKind]map[string]*decision, generations map[schema.GroupKind]map[string]int64) error {
	for gk, ds := range decisions {
		gens := generations[gk]
		for name, d := range ds {
			var obj client.Object = &admissionv1alpha1.ValidationPolicy{}
			if gk.Kind == engine.KindMutationPolicy {
				obj = &admissionv1alpha1.MutationPolicy{}
			}
			if err := r.client.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return err
			}
			gen, ok := gens[name]
			if ok && gen != obj.GetGeneration() {
				continue // recompiling: the registry kicks again
			}
			st := d.status
			st.ObservedGeneration = obj.GetGeneration()
			var cur **admissionv1alpha1.ExecutionStatus
			switch o := obj.(type) {
			case *admissionv1alpha1.ValidationPolicy:
				cur = &o.Status.Execution
			case *admissionv1alpha1.MutationPolicy:
				cur = &o.Status.Execution
			}
			if *cur != nil && **cur == st {
				continue
			}
			before := obj.DeepCopyObject().(client.Object)
			*cur = &st
			if err := r.client.Status().Patch(ctx, obj, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("writing the status of %s %s: %w", gk.Kind, name, err)
			}
		}
	}
	return nil
}

// setup registers the reconciler: it watches the generated objects (to
// restore them and to hand over once they are held), the kicks of the
// policy, exception and readiness changes, and watch, the WebhookBundle
// (nil when its group is off).
func (r *nativeReconciler) setup(mgr ctrl.Manager, kicks <-chan event.GenericEvent, watch client.Object) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{nativeKey} })
	generated := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetLabels()[engine.GeneratedLabel] != "" })
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nativeexecution").
		WatchesRawSource(source.Channel(kicks, one)).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)})
	if r.servesVAP {
		b = b.Watches(&admissionregistrationv1.ValidatingAdmissionPolicy{}, one, builder.WithPredicates(generated)).
			Watches(&admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, one, builder.WithPredicates(generated))
	}
	if r.servesMAP {
		b = b.Watches(&admissionregistrationv1.MutatingAdmissionPolicy{}, one, builder.WithPredicates(generated)).
			Watches(&admissionregistrationv1.MutatingAdmissionPolicyBinding{}, one, builder.WithPredicates(generated))
	}
	if watch != nil {
		b = b.Watches(watch, one)
	}
	return b.Complete(r)
}
