package admission

import (
	"context"
	"fmt"
	"strings"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	engine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/gate"
)

// +kubebuilder:rbac:groups=admission.portcullis.io,resources=policyexceptions,verbs=get;list;watch
// +kubebuilder:rbac:groups=admission.portcullis.io,resources=policyexceptions/status,verbs=get;update;patch

// exceptionReconciler compiles PolicyExceptions into the registry. An
// exception serves only when it compiled, its author was checked for the
// right to update every policy it names (its approval verifies) and it has
// not expired; otherwise it exempts nothing and its status says why.
type exceptionReconciler struct {
	client    client.Client
	leader    *gate.Leader
	registry  *engine.ExceptionRegistry
	approvals approval.Key
	now       func() time.Time
	// changed tells native execution, whose generated policies carry the
	// exceptions.
	changed func()
}

func (r *exceptionReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var x admissionv1alpha1.PolicyException
	if err := r.client.Get(ctx, req.NamespacedName, &x); err != nil {
		if apierrors.IsNotFound(err) {
			r.registry.Delete(req.Name)
			r.changed()
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := x.DeepCopy()
	now := r.now()
	var result reconcile.Result
	cond := metav1.Condition{Type: admissionv1alpha1.ConditionReady, ObservedGeneration: x.Generation, Status: metav1.ConditionFalse}
	cx, errs := engine.CompileException(&x)
	switch {
	case len(errs) > 0:
		cond.Reason, cond.Message = admissionv1alpha1.ReasonInvalid, errs.ToAggregate().Error()
	default:
		if _, err := r.approvals.Verify(approval.Object{Kind: engine.KindPolicyException, Spec: x.Spec, Grants: cx.Grants()}, x.Annotations); err != nil {
			cond.Reason = admissionv1alpha1.ReasonUnapproved
			cond.Message = fmt.Sprintf("exempts nothing: %v; update it as a user who may update every policy it names", err)
			cx = nil
			break
		}
		if !cx.ExpiresAt.IsZero() && !now.Before(cx.ExpiresAt) {
			cond.Reason = admissionv1alpha1.ReasonExpired
			cond.Message = fmt.Sprintf("expired at %s (spec.expiresAt): exempts nothing", cx.ExpiresAt.UTC().Format(time.RFC3339))
			cx = nil
			break
		}
		names := make([]string, len(x.Spec.Policies))
		for i, p := range x.Spec.Policies {
			names[i] = p.Kind + "/" + p.Name
		}
		cond.Status, cond.Reason = metav1.ConditionTrue, admissionv1alpha1.ReasonLoaded
		cond.Message = "exempts what it matches from " + strings.Join(names, ", ")
		if !cx.ExpiresAt.IsZero() {
			cond.Message += " until " + cx.ExpiresAt.UTC().Format(time.RFC3339)
			// Come back when it expires, so status says so on time (the
			// engines stop exempting at expiresAt by themselves).
			result.RequeueAfter = cx.ExpiresAt.Sub(now) + time.Second
		}
	}
	if len(errs) > 0 {
		cx = nil
	}
	r.registry.Set(x.Name, cx)
	r.changed()
	meta.SetStatusCondition(&x.Status.Conditions, cond)
	x.Status.ObservedGeneration = x.Generation
	if err := r.leader.WriteStatus(ctx, r.client, &x, before, !apiequality.Semantic.DeepEqual(before.Status, x.Status)); err != nil {
		return reconcile.Result{}, err
	}
	return result, nil
}

func (r *exceptionReconciler) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("policyexception").
		For(&admissionv1alpha1.PolicyException{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, approval.Changed))).
		WatchesRawSource(r.leader.Source(func() client.ObjectList { return &admissionv1alpha1.PolicyExceptionList{} })).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}
