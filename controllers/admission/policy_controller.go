package admission

import (
	"context"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	engine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/gate"
	"github.com/portcullis-io/portcullis/internal/paramcache"
)

// Deps is what the admission controllers need; cmd wires it.
type Deps struct {
	Manager     manager.Manager
	Compiler    *engine.Compiler
	Mutations   *engine.MutationRegistry
	Validations *engine.ValidationRegistry
	// Exceptions receives the PolicyExceptions that serve; Approvals
	// verifies that their authors were checked.
	Exceptions *engine.ExceptionRegistry
	Approvals  approval.Key
	// Changes receives an event after every change of the loaded policies;
	// the webhook configuration reconciler narrows its rules from it.
	Changes chan<- event.GenericEvent
	// Params watches the parameter kinds the policies name; nil leaves
	// them unwatched (a policy with a paramRef is then an error of its
	// own on every request it matches).
	Params *paramcache.Cache
	// Native, when set, has the API server evaluate what it can express
	// itself: see nativeReconciler.
	Native *NativeDeps
	// Audit, when set, runs the background audit on the leader.
	Audit *AuditDeps
}

// NativeDeps is what native execution needs.
type NativeDeps struct {
	// Settings reads the cluster's configuration at every reconcile.
	Settings func(ctx context.Context) (NativeSettings, error)
	// ServesVAP and ServesMAP: the API server serves
	// admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy and
	// MutatingAdmissionPolicy (and their bindings).
	ServesVAP, ServesMAP bool
	// Watch is the kind of the object Settings reads (the WebhookBundle),
	// nil when there is none.
	Watch client.Object
	// Grace is DefaultHandOverGrace when zero.
	Grace time.Duration
}

// +kubebuilder:rbac:groups=admission.portcullis.io,resources=mutationpolicies;validationpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=admission.portcullis.io,resources=mutationpolicies/status;validationpolicies/status,verbs=get;update;patch

// policy is what the generic reconciler needs of either kind.
type policy interface {
	client.Object
	*admissionv1alpha1.MutationPolicy | *admissionv1alpha1.ValidationPolicy
}

// reconciler compiles one kind into its registry. The two kinds differ
// only in the functions it is given.
type reconciler[P policy] struct {
	name    string
	client  client.Client
	leader  *gate.Leader
	newObj  func() P
	status  func(P) *admissionv1alpha1.PolicyStatus
	compile func(P) (schema.GroupVersionKind, field.ErrorList) // compiles and stores (broken on failure); its paramKind
	// failurePolicy is the policy's spec.failurePolicy, defaulted.
	failurePolicy func(P) admissionregistrationv1.FailurePolicyType
	forget        func(name string)
	changes       []chan<- event.GenericEvent
	params        *paramcache.Cache
}

func (r *reconciler[P]) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	obj := r.newObj()
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
			r.useParams(req.Name, schema.GroupVersionKind{})
			r.changed()
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := obj.DeepCopyObject().(P)
	paramKind, errs := r.compile(obj)
	r.changed()
	var requeue time.Duration
	st := r.status(obj)
	cond := metav1.Condition{Type: admissionv1alpha1.ConditionReady, ObservedGeneration: obj.GetGeneration(),
		Status: metav1.ConditionTrue, Reason: admissionv1alpha1.ReasonLoaded, Message: "compiled and applied"}
	// Watched whatever else is wrong: a policy served with one broken
	// validation still reads its parameters for the others.
	paramsMsg := r.paramsReady(obj.GetName(), paramKind)
	if len(errs) > 0 {
		// Kept, not dropped: its failure policy applies to every request
		// it matches, as for a ValidatingAdmissionPolicy that does not
		// compile.
		cond.Status, cond.Reason = metav1.ConditionFalse, admissionv1alpha1.ReasonInvalid
		cond.Message = fmt.Sprintf("%s; until it is fixed, its failurePolicy (%s) applies to every request it matches", errs.ToAggregate().Error(), r.failurePolicy(obj))
	} else if paramsMsg != "" {
		cond.Status, cond.Reason = metav1.ConditionFalse, admissionv1alpha1.ReasonParamsUnavailable
		cond.Message = fmt.Sprintf("%s; until they are, its failurePolicy (%s) applies to every request it matches", paramsMsg, r.failurePolicy(obj))
	}
	if paramsMsg != "" {
		requeue = paramsRecheck
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	st.ObservedGeneration = obj.GetGeneration()
	if err := r.leader.WriteStatus(ctx, r.client, obj, before, !apiequality.Semantic.DeepEqual(r.status(before), st)); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// paramsRecheck is how often a policy whose parameters are not available
// is looked at again.
const paramsRecheck = 5 * time.Second

// useParams tells the parameter cache which kind policy name names.
func (r *reconciler[P]) useParams(name string, gvk schema.GroupVersionKind) error {
	if r.params == nil {
		return nil
	}
	return r.params.Use(r.name+"/"+name, gvk)
}

// paramsReady watches the policy's parameter kind and says why its
// parameters are not available yet, "" when they are (or it has none).
func (r *reconciler[P]) paramsReady(name string, gvk schema.GroupVersionKind) string {
	if err := r.useParams(name, gvk); err != nil {
		return "spec.paramKind: " + err.Error()
	}
	if r.params == nil || gvk.Empty() {
		return ""
	}
	synced, err := r.params.Status(gvk)
	switch {
	case synced:
		return ""
	case err != nil:
		return fmt.Sprintf("spec.paramKind: the cache of %s has not synced: %v (the operator needs list and watch on it)", gvk, err)
	default:
		return fmt.Sprintf("spec.paramKind: the cache of %s has not synced yet", gvk)
	}
}

// changed tells the webhook configuration and native execution
// reconcilers, without blocking: one pending signal is enough, they read
// the current registries.
func (r *reconciler[P]) changed() { kick(r.changes) }

func kick(chs []chan<- event.GenericEvent) {
	for _, ch := range chs {
		if ch == nil {
			continue
		}
		select {
		case ch <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{}}:
		default:
		}
	}
}

func (r *reconciler[P]) setup(mgr ctrl.Manager, list func() client.ObjectList) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(r.name).
		For(r.newObj(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(r.leader.Source(list)).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}

// Setup registers both controllers and their readiness gate.
func Setup(d Deps) error {
	c := d.Manager.GetClient()
	leader := gate.NewLeader(c)
	changes := []chan<- event.GenericEvent{d.Changes}
	var nativeKicks chan event.GenericEvent
	if d.Audit != nil {
		c, err := client.New(d.Manager.GetConfig(), client.Options{Scheme: d.Manager.GetScheme(), Mapper: d.Manager.GetRESTMapper()})
		if err != nil {
			return err
		}
		violations, err := auditViolations(d.Audit.Metrics)
		if err != nil {
			return err
		}
		// Uncached: the reports and policies are read once per audit.
		if err := d.Manager.Add(&auditor{client: c, validations: d.Validations, deps: *d.Audit, now: time.Now, violations: violations}); err != nil {
			return err
		}
	}
	if d.Native != nil {
		nativeKicks = make(chan event.GenericEvent, 1)
		changes = append(changes, nativeKicks)
	}
	mut := &reconciler[*admissionv1alpha1.MutationPolicy]{
		name: "mutationpolicy", client: c, leader: leader, changes: changes, params: d.Params,
		newObj: func() *admissionv1alpha1.MutationPolicy { return &admissionv1alpha1.MutationPolicy{} },
		status: func(p *admissionv1alpha1.MutationPolicy) *admissionv1alpha1.PolicyStatus { return &p.Status },
		compile: func(p *admissionv1alpha1.MutationPolicy) (schema.GroupVersionKind, field.ErrorList) {
			compiled, errs := engine.CompileMutationPolicy(d.Compiler, p)
			d.Mutations.Set(p.Name, compiled)
			return compiled.ParamKind(), errs
		},
		failurePolicy: func(p *admissionv1alpha1.MutationPolicy) admissionregistrationv1.FailurePolicyType {
			return ptr.Deref(p.Spec.FailurePolicy, admissionregistrationv1.Fail)
		},
		forget: d.Mutations.Delete,
	}
	if err := mut.setup(d.Manager, func() client.ObjectList { return &admissionv1alpha1.MutationPolicyList{} }); err != nil {
		return err
	}
	val := &reconciler[*admissionv1alpha1.ValidationPolicy]{
		name: "validationpolicy", client: c, leader: leader, changes: changes, params: d.Params,
		newObj: func() *admissionv1alpha1.ValidationPolicy { return &admissionv1alpha1.ValidationPolicy{} },
		status: func(p *admissionv1alpha1.ValidationPolicy) *admissionv1alpha1.PolicyStatus { return &p.Status },
		compile: func(p *admissionv1alpha1.ValidationPolicy) (schema.GroupVersionKind, field.ErrorList) {
			compiled, errs := engine.CompileValidationPolicy(d.Compiler, p)
			d.Validations.Set(p.Name, compiled)
			return compiled.ParamKind(), errs
		},
		failurePolicy: func(p *admissionv1alpha1.ValidationPolicy) admissionregistrationv1.FailurePolicyType {
			return ptr.Deref(p.Spec.FailurePolicy, admissionregistrationv1.Fail)
		},
		forget: d.Validations.Delete,
	}
	if err := val.setup(d.Manager, func() client.ObjectList { return &admissionv1alpha1.ValidationPolicyList{} }); err != nil {
		return err
	}
	exc := &exceptionReconciler{client: c, leader: leader, registry: d.Exceptions, approvals: d.Approvals, now: time.Now,
		changed: func() { kick(changes[1:]) }}
	if err := exc.setup(d.Manager); err != nil {
		return err
	}
	loaded := make(chan struct{})
	if d.Native != nil {
		grace := d.Native.Grace
		if grace == 0 {
			grace = DefaultHandOverGrace
		}
		nat := &nativeReconciler{
			client: c, reader: d.Manager.GetAPIReader(), mutations: d.Mutations, validations: d.Validations, exceptions: d.Exceptions,
			ready: func() bool {
				select {
				case <-loaded:
					return true
				default:
					return false
				}
			},
			settings: d.Native.Settings, servesVAP: d.Native.ServesVAP, servesMAP: d.Native.ServesMAP,
			grace: grace, now: time.Now, changed: func() { kick(changes[:1]) },
		}
		if err := nat.setup(d.Manager, nativeKicks, d.Native.Watch); err != nil {
			return err
		}
		// The leader writes: a replica elected later converges at once.
		if err := d.Manager.Add(runnableOnLeader(func() { nat.elected.Store(true); kick(changes[1:]) })); err != nil {
			return err
		}
	}
	if err := d.Manager.Add(leader); err != nil {
		return err
	}
	ready := gate.NewReady("admission", c, d.Manager.GetCache(), func() {
		// Exceptions first: a policy served before them would refuse what
		// an exception exempts (which fails closed, but needlessly).
		d.Exceptions.MarkReady()
		d.Mutations.MarkReady()
		d.Validations.MarkReady()
		close(loaded)
		mut.changed()
	})
	ready.Track(func() client.ObjectList { return &admissionv1alpha1.MutationPolicyList{} }, d.Mutations.Has)
	ready.Track(func() client.ObjectList { return &admissionv1alpha1.ValidationPolicyList{} }, d.Validations.Has)
	ready.Track(func() client.ObjectList { return &admissionv1alpha1.PolicyExceptionList{} }, d.Exceptions.Has)
	return d.Manager.Add(ready)
}

// runnableOnLeader calls f once this replica is elected.
type runnableOnLeader func()

func (f runnableOnLeader) Start(ctx context.Context) error {
	f()
	<-ctx.Done()
	return nil
}

// NeedLeaderElection: it starts on election.
func (runnableOnLeader) NeedLeaderElection() bool { return true }
