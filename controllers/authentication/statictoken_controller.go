package authentication

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/gate"
)

// StaticTokenControllerName names the controller in logs and metrics.
const StaticTokenControllerName = "statictoken"

// StaticTokenReconciler compiles StaticTokens into the registry.
type StaticTokenReconciler struct {
	Client    client.Client
	Namespace string
	Registry  *authn.Registry
	Now       func() time.Time
	Leader    *gate.Leader
	// Approvals verifies that the author was checked for the identity.
	Approvals approval.Key
}

// +kubebuilder:rbac:groups=authentication.portcullis.io,resources=statictokens,verbs=get;list;watch
// +kubebuilder:rbac:groups=authentication.portcullis.io,resources=statictokens/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=portcullis-system,resources=secrets,verbs=get;list;watch;create;update;patch

// Reconcile gathers the StaticToken and its Secret, compiles, publishes,
// and writes status once.
func (r *StaticTokenReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var st authnv1alpha1.StaticToken
	if err := r.Client.Get(ctx, req.NamespacedName, &st); err != nil {
		if apierrors.IsNotFound(err) {
			r.Registry.DeleteStatic(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := st.DeepCopy()

	entry, reason, msg, retry := r.compile(ctx, &st)
	r.Registry.SetStatic(st.Name, entry)

	var result reconcile.Result
	now := r.Now()
	ok := entry != nil
	servedBy, conflict := r.Registry.StaticConflict(st.Name)
	switch {
	case entry == nil:
	case conflict:
		// Never the token itself: only which object holds it.
		ok, reason, msg = false, authnv1alpha1.ReasonConflict, fmt.Sprintf("the token in spec.secretRef is also held by StaticToken %q, created earlier, which is the one served: a token authenticates as one identity", servedBy)
		result.RequeueAfter = conflictRecheck
	case entry.Disabled:
		ok, reason, msg = false, authnv1alpha1.ReasonDisabled, "the token is disabled (spec.disabled)"
	case !entry.ExpiresAt.IsZero() && !now.Before(entry.ExpiresAt):
		ok, reason, msg = false, authnv1alpha1.ReasonExpired, fmt.Sprintf("the token expired at %s (spec.expiresAt)", entry.ExpiresAt.UTC().Format(time.RFC3339))
	case !entry.ExpiresAt.IsZero():
		// Come back when it expires, so status says so on time.
		result.RequeueAfter = entry.ExpiresAt.Sub(now) + time.Second
	}
	if retry > 0 {
		result.RequeueAfter = retry
	}
	readyCondition(&st.Status.Conditions, st.Generation, ok, reason, msg)
	st.Status.ObservedGeneration = st.Generation
	if err := r.Leader.WriteStatus(ctx, r.Client, &st, before, !apiequality.Semantic.DeepEqual(before.Status, st.Status)); err != nil {
		return reconcile.Result{}, err
	}
	return result, nil
}

// conflictRecheck is how often a StaticToken in conflict looks again: when
// the one served is deleted or changes its token, this one takes over
// within that time (nothing else tells it).
const conflictRecheck = 10 * time.Second

// secretRetry is how soon a StaticToken whose Secret is missing on a
// follower is looked at again: the leader is creating it.
const secretRetry = 5 * time.Second

// compile returns the entry, or nil with a reason and message.
func (r *StaticTokenReconciler) compile(ctx context.Context, st *authnv1alpha1.StaticToken) (*authn.StaticEntry, string, string, time.Duration) {
	if _, err := r.Approvals.Verify(approval.Object{Kind: "StaticToken", Namespace: st.Namespace, Spec: st.Spec, Grants: authn.StaticTokenGrants(st.Spec, r.Namespace)}, st.Annotations); err != nil {
		return nil, authnv1alpha1.ReasonUnapproved, unapproved(err), 0
	}
	ref := st.Spec.SecretRef
	data, secret, err := secretData(ctx, r.Client, r.Namespace, ref)
	if err != nil {
		generated, gerr := r.ensureSecret(ctx, st, secret, err)
		if gerr != nil {
			return nil, authnv1alpha1.ReasonSecretError, gerr.Error(), secretRetry
		}
		data = generated
	}
	token := strings.TrimSpace(string(data))
	if err := authn.ValidStaticToken(token); err != nil {
		return nil, authnv1alpha1.ReasonSecretError, fmt.Sprintf("spec.secretRef: Secret %s/%s key %q: %v", r.Namespace, ref.Name, keyOf(ref), err), 0
	}
	return authn.NewStaticEntry(st, token), authnv1alpha1.ReasonLoaded, fmt.Sprintf("the token authenticates as %q", st.Spec.User.Username), 0
}

// ensureSecret creates the token Secret, or adds the key to a Secret this
// operator generated. A Secret a user made is never modified. Only the
// leader writes; a follower reports the missing Secret and retries.
func (r *StaticTokenReconciler) ensureSecret(ctx context.Context, st *authnv1alpha1.StaticToken, existing *corev1.Secret, cause error) ([]byte, error) {
	ref := st.Spec.SecretRef
	where := fmt.Sprintf("spec.secretRef: Secret %s/%s", r.Namespace, ref.Name)
	if existing == nil && !apierrors.IsNotFound(cause) {
		return nil, fmt.Errorf("%s: %v", where, cause)
	}
	if existing != nil && (existing.Labels[ManagedByLabel] != ManagedByValue || existing.Labels[GeneratedTokenLabel] != "true") {
		return nil, fmt.Errorf("%s has no key %q (the Secret was not generated for a StaticToken, so it is not changed)", where, keyOf(ref))
	}
	if !r.Leader.IsLeader() {
		return nil, fmt.Errorf("%s: not found yet; the leader generates it", where)
	}
	token, err := authn.GenerateToken()
	if err != nil {
		return nil, err
	}
	if existing != nil {
		patch := client.MergeFrom(existing.DeepCopy())
		if existing.Data == nil {
			existing.Data = map[string][]byte{}
		}
		existing.Data[keyOf(ref)] = []byte(token)
		if err := r.Client.Patch(ctx, existing, patch); err != nil {
			return nil, fmt.Errorf("%s: adding key %q: %v", where, keyOf(ref), err)
		}
		return []byte(token), nil
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: ref.Name, Namespace: r.Namespace,
			Labels: map[string]string{ManagedByLabel: ManagedByValue, GeneratedTokenLabel: "true"},
			// Owned by the StaticToken, so deleting the token deletes the
			// Secret that was made for it.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: authnv1alpha1.GroupVersion.String(), Kind: "StaticToken",
				Name: st.Name, UID: st.UID, BlockOwnerDeletion: ptr.To(false),
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{keyOf(ref): []byte(token)},
	}
	if err := r.Client.Create(ctx, s); err != nil {
		return nil, fmt.Errorf("%s: creating it: %v", where, err)
	}
	ctrl.LoggerFrom(ctx).Info("generated a token Secret", "secret", r.Namespace+"/"+ref.Name)
	return []byte(token), nil
}

// SetupWithManager registers the controller. It runs on every replica
// (NeedLeaderElection false): followers compile too, so they serve.
func (r *StaticTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(StaticTokenControllerName).
		For(&authnv1alpha1.StaticToken{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, approval.Changed))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(requestsFor(r.Client, r.Namespace, staticTokenSecretIndex, func() client.ObjectList { return &authnv1alpha1.StaticTokenList{} }))).
		WatchesRawSource(r.Leader.Source(func() client.ObjectList { return &authnv1alpha1.StaticTokenList{} })).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}

// unapproved is the status message of an object whose approval does not
// verify.
func unapproved(err error) string {
	return fmt.Sprintf("not served: %v; apply it again as a user who may grant what it grants", err)
}
