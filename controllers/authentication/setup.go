package authentication

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/gate"
)

// Deps is what the authentication controllers need; cmd wires it.
type Deps struct {
	Manager   manager.Manager
	Namespace string // the operator's namespace: the only one Secrets are read from
	Registry  *authn.Registry
	Compiler  authenticationcel.Compiler
	// Approvals verifies that each object's author was checked for what
	// it grants.
	Approvals approval.Key
	// Now is the clock, for expiry; time.Now when nil.
	Now func() time.Time
	// DisallowedIssuers returns the API server's service-account issuers,
	// and whether they are known yet.
	DisallowedIssuers func() ([]string, bool)
}

// Field indexes that map a Secret to the objects that read it.
const (
	staticTokenSecretIndex = "spec.secretRef.name"
	jwtSecretIndex         = "spec.jwks.secretRef.name"
)

// ManagedByLabel marks Secrets that the operator generated.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// ManagedByValue is the value of ManagedByLabel on generated Secrets.
const ManagedByValue = "portcullis"

// GeneratedTokenLabel marks, besides ManagedByLabel, the token Secrets the
// StaticToken controller generated: the only Secrets it adds a key to. The
// operator's own Secrets (certificates, the published wiring, the approval
// key) are managed by Portcullis too, but a StaticToken naming one must
// never write into it.
const GeneratedTokenLabel = "authentication.portcullis.io/generated-token"

// Setup registers both controllers and the readiness gate with the manager.
func Setup(ctx context.Context, d Deps) error {
	if d.Now == nil {
		d.Now = time.Now
	}
	idx := d.Manager.GetFieldIndexer()
	if err := idx.IndexField(ctx, &authnv1alpha1.StaticToken{}, staticTokenSecretIndex, func(o client.Object) []string {
		return []string{o.(*authnv1alpha1.StaticToken).Spec.SecretRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &authnv1alpha1.JWTAuthenticator{}, jwtSecretIndex, func(o client.Object) []string {
		if ref := o.(*authnv1alpha1.JWTAuthenticator).Spec.JWKS.SecretRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	leader := gate.NewLeader(d.Manager.GetClient())
	st := &StaticTokenReconciler{Client: d.Manager.GetClient(), Namespace: d.Namespace, Registry: d.Registry, Now: d.Now, Leader: leader, Approvals: d.Approvals}
	if err := st.SetupWithManager(d.Manager); err != nil {
		return err
	}
	ja := &JWTAuthenticatorReconciler{Client: d.Manager.GetClient(), Namespace: d.Namespace, Registry: d.Registry, Compiler: d.Compiler, Now: d.Now, Leader: leader, Approvals: d.Approvals, DisallowedIssuers: d.DisallowedIssuers, lifecycle: ctx}
	if err := ja.SetupWithManager(d.Manager); err != nil {
		return err
	}
	if err := d.Manager.Add(leader); err != nil {
		return err
	}
	ready := gate.NewReady("authentication", d.Manager.GetClient(), d.Manager.GetCache(), d.Registry.MarkReady)
	ready.Track(func() client.ObjectList { return &authnv1alpha1.StaticTokenList{} }, func(n string) bool { return d.Registry.Has(authn.KindStaticToken, n) })
	ready.Track(func() client.ObjectList { return &authnv1alpha1.JWTAuthenticatorList{} }, func(n string) bool { return d.Registry.Has(authn.KindJWTAuthenticator, n) })
	return d.Manager.Add(ready)
}

// readyCondition sets the Ready condition.
func readyCondition(conds *[]metav1.Condition, generation int64, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: authnv1alpha1.ConditionReady, Status: status, ObservedGeneration: generation,
		Reason: reason, Message: message,
	})
}

// secretData reads one key of a Secret in the operator's namespace.
func secretData(ctx context.Context, c client.Client, ns string, ref authnv1alpha1.SecretKeySelector) ([]byte, *corev1.Secret, error) {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &s); err != nil {
		return nil, nil, err
	}
	v, ok := s.Data[keyOf(ref)]
	if !ok {
		return nil, &s, fmt.Errorf("secret %s/%s has no key %q", ns, ref.Name, keyOf(ref))
	}
	return v, &s, nil
}

func keyOf(ref authnv1alpha1.SecretKeySelector) string {
	if ref.Key == "" {
		return "token"
	}
	return ref.Key
}

// requestsFor maps an object to reconcile requests for every object of the
// list's kind whose field index holds its name. Only objects in the
// operator's namespace are considered: the only Secrets we read.
func requestsFor(c client.Client, ns, index string, newList func() client.ObjectList) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		if o.GetNamespace() != ns {
			return nil
		}
		list := newList()
		if err := c.List(ctx, list, client.MatchingFields{index: o.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "listing objects for a Secret", "index", index)
			return nil
		}
		items, _ := meta.ExtractList(list)
		out := make([]reconcile.Request, 0, len(items))
		for _, it := range items {
			if obj, ok := it.(client.Object); ok {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: obj.GetName()}})
			}
		}
		return out
	}
}
