package authentication

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/authn"
)

// Deps is what the authentication controllers need; cmd wires it.
type Deps struct {
	Manager   manager.Manager
	Namespace string // the operator's namespace: the only one Secrets are read from
	Registry  *authn.Registry
	Compiler  authenticationcel.Compiler
	// Now is the clock, for expiry; time.Now when nil.
	Now func() time.Time
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
	leader := newLeaderGate(d.Manager)
	st := &StaticTokenReconciler{Client: d.Manager.GetClient(), Namespace: d.Namespace, Registry: d.Registry, Now: d.Now, Leader: leader}
	if err := st.SetupWithManager(d.Manager); err != nil {
		return err
	}
	ja := &JWTAuthenticatorReconciler{Client: d.Manager.GetClient(), Namespace: d.Namespace, Registry: d.Registry, Compiler: d.Compiler, Now: d.Now, Leader: leader, lifecycle: ctx}
	if err := ja.SetupWithManager(d.Manager); err != nil {
		return err
	}
	if err := d.Manager.Add(leader); err != nil {
		return err
	}
	return d.Manager.Add(&readinessGate{client: d.Manager.GetClient(), cache: d.Manager.GetCache(), registry: d.Registry})
}

// leaderGate tells reconcilers whether this replica leads, and when it
// becomes leader replays every object so that the new leader writes status
// that the others only computed.
type leaderGate struct {
	mgr     manager.Manager
	static  chan event.GenericEvent
	jwt     chan event.GenericEvent
	elected chan struct{}
}

func newLeaderGate(mgr manager.Manager) *leaderGate {
	return &leaderGate{mgr: mgr, static: make(chan event.GenericEvent), jwt: make(chan event.GenericEvent), elected: make(chan struct{})}
}

// IsLeader reports whether this replica may write to the API.
func (g *leaderGate) IsLeader() bool {
	select {
	case <-g.elected:
		return true
	default:
		return false
	}
}

// NeedLeaderElection makes Start run only on the leader.
func (g *leaderGate) NeedLeaderElection() bool { return true }

// Start runs once this replica is elected.
func (g *leaderGate) Start(ctx context.Context) error {
	close(g.elected)
	c := g.mgr.GetClient()
	var sts authnv1alpha1.StaticTokenList
	if err := c.List(ctx, &sts); err != nil {
		return fmt.Errorf("listing StaticTokens after election: %w", err)
	}
	for i := range sts.Items {
		select {
		case g.static <- event.GenericEvent{Object: &sts.Items[i]}:
		case <-ctx.Done():
			return nil
		}
	}
	var jas authnv1alpha1.JWTAuthenticatorList
	if err := c.List(ctx, &jas); err != nil {
		return fmt.Errorf("listing JWTAuthenticators after election: %w", err)
	}
	for i := range jas.Items {
		select {
		case g.jwt <- event.GenericEvent{Object: &jas.Items[i]}:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// readinessGate marks the registry ready once every StaticToken and
// JWTAuthenticator that exists after the caches sync has been processed, so
// a restarted replica never answers from a partial snapshot.
type readinessGate struct {
	client   client.Client
	cache    interface{ WaitForCacheSync(context.Context) bool }
	registry *authn.Registry
}

// readinessPoll is how often the gate checks the registry: short, because
// the replica is not ready until it passes.
const readinessPoll = 50 * time.Millisecond

func (g *readinessGate) NeedLeaderElection() bool { return false }

func (g *readinessGate) Start(ctx context.Context) error {
	if !g.cache.WaitForCacheSync(ctx) {
		return nil
	}
	var sts authnv1alpha1.StaticTokenList
	if err := g.client.List(ctx, &sts); err != nil {
		return fmt.Errorf("listing StaticTokens for readiness: %w", err)
	}
	var jas authnv1alpha1.JWTAuthenticatorList
	if err := g.client.List(ctx, &jas); err != nil {
		return fmt.Errorf("listing JWTAuthenticators for readiness: %w", err)
	}
	t := time.NewTicker(readinessPoll)
	defer t.Stop()
	for {
		done := true
		for i := range sts.Items {
			done = done && g.registry.Has(authn.KindStaticToken, sts.Items[i].Name)
		}
		for i := range jas.Items {
			done = done && g.registry.Has(authn.KindJWTAuthenticator, jas.Items[i].Name)
		}
		if done {
			g.registry.MarkReady()
			ctrl.Log.WithName("authentication").Info("snapshot ready", "staticTokens", len(sts.Items), "jwtAuthenticators", len(jas.Items))
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readyCondition sets the Ready condition and reports whether it changed.
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
