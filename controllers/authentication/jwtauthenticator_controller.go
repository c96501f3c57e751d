package authentication

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
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
	"github.com/portcullis-io/portcullis/internal/authn/jwks"
	"github.com/portcullis-io/portcullis/internal/gate"
)

// JWTAuthenticatorControllerName names the controller in logs and metrics.
const JWTAuthenticatorControllerName = "jwtauthenticator"

// jwksRetry is how soon an authenticator whose key set could not be read is
// tried again. The remote key set retries on its own once loaded; this
// covers the first load.
const jwksRetry = 30 * time.Second

// JWTAuthenticatorReconciler compiles JWTAuthenticators into the registry.
type JWTAuthenticatorReconciler struct {
	Client    client.Client
	Namespace string
	Registry  *authn.Registry
	Compiler  authenticationcel.Compiler
	Now       func() time.Time
	Leader    *gate.Leader
	// Approvals verifies that the author was checked: a JWTAuthenticator
	// can mint any identity.
	Approvals approval.Key
	// DisallowedIssuers returns the API server's service-account issuers,
	// which no JWTAuthenticator may name (authn.ValidateJWTAuthenticatorSpec),
	// and whether they are known yet: an authenticator loaded before they
	// are is checked again every issuersRetry until they are.
	DisallowedIssuers func() ([]string, bool)

	// lifecycle bounds the background refresh of remote key sets.
	lifecycle context.Context
	mu        sync.Mutex
	remotes   map[string]*remote // by object name
}

// remote is a URL key set kept across reconciles: it refreshes itself, so
// it is rebuilt only when the object's spec changes.
type remote struct {
	uid        types.UID
	generation int64
	keys       *jwks.RemoteKeySet
	cancel     context.CancelFunc
}

// +kubebuilder:rbac:groups=authentication.portcullis.io,resources=jwtauthenticators,verbs=get;list;watch
// +kubebuilder:rbac:groups=authentication.portcullis.io,resources=jwtauthenticators/status,verbs=get;update;patch

// Reconcile gathers the authenticator and its key set, compiles, publishes,
// and writes status once.
func (r *JWTAuthenticatorReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var ja authnv1alpha1.JWTAuthenticator
	if err := r.Client.Get(ctx, req.NamespacedName, &ja); err != nil {
		if apierrors.IsNotFound(err) {
			r.dropRemote(req.Name)
			r.Registry.DeleteJWT(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	before := ja.DeepCopy()

	var result reconcile.Result
	var compiled *authn.JWTAuthenticator
	reason, msg := authnv1alpha1.ReasonLoaded, ""
	var keys authn.KeySet
	var nkeys int
	var kerr *keyError
	if _, err := r.Approvals.Verify(approval.Object{Kind: "JWTAuthenticator", Spec: ja.Spec, Grants: authn.JWTAuthenticatorGrants()}, ja.Annotations); err != nil {
		// Not served, so its remote key set is not fetched either.
		r.dropRemote(ja.Name)
		reason, msg = authnv1alpha1.ReasonUnapproved, unapproved(err)
	} else if keys, nkeys, kerr = r.keySet(ctx, &ja); kerr != nil {
		reason, msg = kerr.reason, kerr.Error()
		if kerr.retry {
			result.RequeueAfter = jwksRetry
		}
	} else {
		disallowed, known := issuers(r.DisallowedIssuers)
		if !known {
			result.RequeueAfter = issuersRetry
		}
		var err error
		compiled, err = authn.CompileJWT(r.Compiler, ja.Name, &ja.Spec, keys, r.Now, disallowed)
		if err != nil {
			reason, msg = authnv1alpha1.ReasonInvalid, err.Error()
		} else {
			msg = fmt.Sprintf("verifying tokens from %s with %d key(s)", ja.Spec.Issuer.URL, nkeys)
		}
	}
	r.Registry.SetJWT(ja.Name, compiled)

	readyCondition(&ja.Status.Conditions, ja.Generation, compiled != nil, reason, msg)
	ja.Status.ObservedGeneration = ja.Generation
	ja.Status.Keys = int32(nkeys)
	if err := r.Leader.WriteStatus(ctx, r.Client, &ja, before, !apiequality.Semantic.DeepEqual(before.Status, ja.Status)); err != nil {
		return reconcile.Result{}, err
	}
	return result, nil
}

type keyError struct {
	reason string
	retry  bool
	err    error
}

func (e *keyError) Error() string { return e.err.Error() }

// keySet returns the key set for the object and its size.
func (r *JWTAuthenticatorReconciler) keySet(ctx context.Context, ja *authnv1alpha1.JWTAuthenticator) (authn.KeySet, int, *keyError) {
	src := ja.Spec.JWKS
	switch {
	case src.Inline != "":
		r.dropRemote(ja.Name)
		ks, err := jwks.NewStatic([]byte(src.Inline))
		if err != nil {
			return nil, 0, &keyError{reason: authnv1alpha1.ReasonJWKSError, err: fmt.Errorf("spec.jwks.inline: %v", err)}
		}
		return ks, ks.Len(), nil
	case src.SecretRef != nil:
		r.dropRemote(ja.Name)
		data, _, err := secretData(ctx, r.Client, r.Namespace, *src.SecretRef)
		if err != nil {
			return nil, 0, &keyError{reason: authnv1alpha1.ReasonSecretError, err: fmt.Errorf("spec.jwks.secretRef: %v", err)}
		}
		ks, err := jwks.NewStatic(data)
		if err != nil {
			return nil, 0, &keyError{reason: authnv1alpha1.ReasonJWKSError, err: fmt.Errorf("spec.jwks.secretRef: Secret %s/%s key %q: %v", r.Namespace, src.SecretRef.Name, keyOf(*src.SecretRef), err)}
		}
		return ks, ks.Len(), nil
	case src.URL != "":
		rk, err := r.remoteKeySet(ja)
		if err != nil {
			return nil, 0, &keyError{reason: authnv1alpha1.ReasonJWKSError, retry: true, err: fmt.Errorf("spec.jwks.url: %v", err)}
		}
		return rk, rk.Len(), nil
	}
	return nil, 0, &keyError{reason: authnv1alpha1.ReasonInvalid, err: fmt.Errorf("spec.jwks: one of inline, secretRef or url is required")}
}

func (r *JWTAuthenticatorReconciler) remoteKeySet(ja *authnv1alpha1.JWTAuthenticator) (*jwks.RemoteKeySet, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remotes == nil {
		r.remotes = map[string]*remote{}
	}
	if cur, ok := r.remotes[ja.Name]; ok {
		if cur.uid == ja.UID && cur.generation == ja.Generation {
			return cur.keys, nil
		}
		cur.cancel()
		delete(r.remotes, ja.Name)
	}
	ctx, cancel := context.WithCancel(r.lifecycle)
	opts := jwks.RemoteOptions{URL: ja.Spec.JWKS.URL, CAPEM: []byte(ja.Spec.JWKS.CertificateAuthority)}
	if ri := ja.Spec.JWKS.RefreshInterval; ri != nil {
		opts.RefreshInterval = ri.Duration
	}
	ks, err := jwks.NewRemote(ctx, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	r.remotes[ja.Name] = &remote{uid: ja.UID, generation: ja.Generation, keys: ks, cancel: cancel}
	return ks, nil
}

func (r *JWTAuthenticatorReconciler) dropRemote(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.remotes[name]; ok {
		cur.cancel()
		delete(r.remotes, name)
	}
}

// SetupWithManager registers the controller on every replica.
func (r *JWTAuthenticatorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.lifecycle == nil {
		r.lifecycle = context.Background()
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(JWTAuthenticatorControllerName).
		For(&authnv1alpha1.JWTAuthenticator{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, approval.Changed))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(requestsFor(r.Client, r.Namespace, jwtSecretIndex, func() client.ObjectList { return &authnv1alpha1.JWTAuthenticatorList{} }))).
		WatchesRawSource(r.Leader.Source(func() client.ObjectList { return &authnv1alpha1.JWTAuthenticatorList{} })).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}

// issuersRetry is how soon an authenticator loaded before the API
// server's service-account issuers were known is checked again.
const issuersRetry = 30 * time.Second

// issuers calls f, if there is one: none, and known, without it.
func issuers(f func() ([]string, bool)) ([]string, bool) {
	if f == nil {
		return nil, true
	}
	return f()
}
