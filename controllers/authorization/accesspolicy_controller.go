package authorization

import (
	"context"
	"fmt"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/authz"
	"github.com/portcullis-io/portcullis/internal/gate"
)

// ControllerName names the controller in logs and metrics.
const ControllerName = "accesspolicy"

// Deps is what the authorization controller needs; cmd wires it.
type Deps struct {
	Manager  manager.Manager
	Registry *authz.Registry
	Compiler authorizationcel.Compiler
	// Approvals verifies that each policy's author was checked for what
	// it grants.
	Approvals approval.Key
	// Exclusions are the requests the rendered wiring never sends to the
	// webhook: a policy's status names what of it they leave unenforced.
	Exclusions apiserverconfig.Exclusions
}

// AccessPolicyReconciler compiles AccessPolicies into the registry.
type AccessPolicyReconciler struct {
	Client     client.Client
	Registry   *authz.Registry
	Compiler   authorizationcel.Compiler
	Leader     *gate.Leader
	Approvals  approval.Key
	Exclusions apiserverconfig.Exclusions
}

// +kubebuilder:rbac:groups=authorization.portcullis.io,resources=accesspolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=authorization.portcullis.io,resources=accesspolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile compiles one policy, publishes, and writes status once.
func (r *AccessPolicyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p authzv1alpha1.AccessPolicy
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			r.Registry.Delete(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := p.DeepCopy()
	compiled, errs := authz.Compile(r.Compiler, &p)
	cond := metav1.Condition{Type: authzv1alpha1.ConditionReady, ObservedGeneration: p.Generation}
	var unapproved error
	if len(errs) == 0 {
		_, unapproved = r.Approvals.Verify(approval.Object{Kind: "AccessPolicy", Spec: p.Spec, Grants: compiled.EscalationGrants()}, p.Annotations)
	}
	switch {
	case len(errs) > 0:
		// nil, or broken: a Deny whose conditions no longer compile keeps
		// denying what it covers (authz.Compile).
		r.Registry.Set(p.Name, compiled)
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, authzv1alpha1.ReasonInvalid, errs.ToAggregate().Error()
		if compiled != nil && p.Spec.Effect == authzv1alpha1.EffectDeny {
			cond.Message += "; until it is fixed it denies every request it could cover, as one whose conditions cannot be evaluated"
		}
	case unapproved != nil:
		// A Deny or DryRun policy grants nothing and needs no approval
		// (approval.Key.Verify), so it is never dropped for want of one.
		r.Registry.Set(p.Name, nil)
		cond.Status, cond.Reason = metav1.ConditionFalse, authzv1alpha1.ReasonUnapproved
		cond.Message = fmt.Sprintf("not served: %v; apply it again as a user who may grant what it grants", unapproved)
	default:
		r.Registry.Set(p.Name, compiled)
		cond.Status, cond.Reason = metav1.ConditionTrue, authzv1alpha1.ReasonLoaded
		cond.Message = fmt.Sprintf("%s %s for %d subject(s), %d rule(s)", p.Spec.Enforcement, p.Spec.Effect, len(p.Spec.Subjects), len(p.Spec.Rules))
		if notes := compiled.Unreached(r.Exclusions); len(notes) > 0 {
			cond.Message += "; it does not apply where the API server never asks the webhook: " + strings.Join(notes, "; ")
		}
	}
	meta.SetStatusCondition(&p.Status.Conditions, cond)
	p.Status.ObservedGeneration = p.Generation
	if err := r.Leader.WriteStatus(ctx, r.Client, &p, before, !apiequality.Semantic.DeepEqual(before.Status, p.Status)); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}

// SetupWithManager registers the controller on every replica.
func (r *AccessPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&authzv1alpha1.AccessPolicy{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, approval.Changed))).
		WatchesRawSource(r.Leader.Source(func() client.ObjectList { return &authzv1alpha1.AccessPolicyList{} })).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}

// Setup registers the controller and its gates.
func Setup(d Deps) error {
	c := d.Manager.GetClient()
	leader := gate.NewLeader(c)
	r := &AccessPolicyReconciler{Client: c, Registry: d.Registry, Compiler: d.Compiler, Leader: leader, Approvals: d.Approvals, Exclusions: d.Exclusions}
	if err := r.SetupWithManager(d.Manager); err != nil {
		return err
	}
	if err := d.Manager.Add(leader); err != nil {
		return err
	}
	ready := gate.NewReady("authorization", c, d.Manager.GetCache(), d.Registry.MarkReady)
	ready.Track(func() client.ObjectList { return &authzv1alpha1.AccessPolicyList{} }, d.Registry.Has)
	return d.Manager.Add(ready)
}
