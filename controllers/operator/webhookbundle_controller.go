package operator

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/controllers/webhookconfig"
	"github.com/portcullis-io/portcullis/internal/certs"
	"github.com/portcullis-io/portcullis/internal/opmetrics"
)

// ControllerName names the controller in logs and metrics.
const ControllerName = "webhookbundle"

// Resync is how often status is refreshed without an event: the
// certificate ages and the API server's calls are not events.
const Resync = 30 * time.Second

// Observed records when a phase's webhook was last called on this replica.
type Observed struct {
	last atomic.Int64
	// first gets one event at the first call, so status says so at once
	// rather than at the next resync.
	first chan event.GenericEvent
}

// NewObserved returns an Observed with nothing seen.
func NewObserved() *Observed { return &Observed{first: make(chan event.GenericEvent, 1)} }

// Mark records a call now. It is on the request path: one atomic swap, and
// a non-blocking send the first time only.
func (o *Observed) Mark() {
	if o.last.Swap(time.Now().UnixNano()) == 0 {
		select {
		case o.first <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}}:
		default:
		}
	}
}

// Seen reports whether a call was ever recorded.
func (o *Observed) Seen() bool { return o != nil && o.last.Load() != 0 }

// Reconciler writes the WebhookBundle's status.
type Reconciler struct {
	Client client.Client
	// CertFile is the serving certificate (PEM).
	CertFile string
	// CRDs are the names of the CRDs the operator installed.
	CRDs []string
	// WebhookConfigurations names each admission webhook configuration
	// that is not as the operator renders it (webhookconfig.Reconciler
	// Drift): missing, edited, or present though its webhook is off. Nil:
	// none is kept.
	WebhookConfigurations func(context.Context) ([]string, error)
	// Authenticate and Authorize are nil when the phase is off.
	Authenticate, Authorize *Observed
	// Kinds give the policy counts.
	Kinds []opmetrics.Kind
	Now   func() time.Time
}

// +kubebuilder:rbac:groups=operator.portcullis.io,resources=webhookbundles,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=operator.portcullis.io,resources=webhookbundles/status,verbs=get;update;patch

// Reconcile creates the default bundle when absent and writes its status.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req.Name != operatorv1alpha1.DefaultName {
		return reconcile.Result{}, nil
	}
	var b operatorv1alpha1.WebhookBundle
	if err := r.Client.Get(ctx, client.ObjectKey{Name: operatorv1alpha1.DefaultName}, &b); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		b = operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
		if err := r.Client.Create(ctx, &b); err != nil && !apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, fmt.Errorf("creating the default WebhookBundle: %w", err)
		}
		return reconcile.Result{Requeue: true}, nil
	}
	before := b.DeepCopy()
	now := r.Now
	if now == nil {
		now = time.Now
	}
	gen := b.Generation
	set := func(t string, ok bool, reason, msg string) {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	ready := true

	// Certificate.
	notAfter, err := certNotAfter(r.CertFile)
	switch {
	case err != nil:
		set(operatorv1alpha1.ConditionCertificateReady, false, "Unreadable", err.Error())
		ready = false
	case now().Add(certs.RenewBefore).After(notAfter):
		set(operatorv1alpha1.ConditionCertificateReady, false, "ExpiresSoon", fmt.Sprintf("the serving certificate expires at %s", notAfter.UTC().Format(time.RFC3339)))
		ready = false
	default:
		set(operatorv1alpha1.ConditionCertificateReady, true, "Valid", fmt.Sprintf("the serving certificate is valid until %s", notAfter.UTC().Format(time.RFC3339)))
	}
	if err == nil {
		b.Status.Certificate.NotAfter = &metav1.Time{Time: notAfter}
	}

	// CRDs.
	var missing []string
	for _, name := range r.CRDs {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil || !established(&crd) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		set(operatorv1alpha1.ConditionCRDsEstablished, false, "NotEstablished", "not established: "+strings.Join(missing, ", "))
		ready = false
	} else {
		set(operatorv1alpha1.ConditionCRDsEstablished, true, "Established", fmt.Sprintf("%d CRDs established", len(r.CRDs)))
	}

	// Webhook configurations.
	if drift, err := r.webhookDrift(ctx); err != nil {
		set(operatorv1alpha1.ConditionAdmissionWebhooksConfigured, false, "Unknown", err.Error())
		ready = false
	} else if len(drift) > 0 {
		set(operatorv1alpha1.ConditionAdmissionWebhooksConfigured, false, "NotAsRendered", strings.Join(drift, "; "))
		ready = false
	} else {
		set(operatorv1alpha1.ConditionAdmissionWebhooksConfigured, true, "Configured", "the webhook configurations match the loaded policies")
	}

	// Whether the API server has been seen calling (on this replica, the
	// leader; a follower's calls are not counted).
	observe := func(t string, o *Observed, what string) {
		switch {
		case o == nil:
			meta.RemoveStatusCondition(&b.Status.Conditions, t)
		case o.Seen():
			set(t, true, "Observed", "the API server has called "+what)
		default:
			set(t, false, "NotObserved", "the API server has not called "+what+" on the leader yet: check its wiring (portcullis apiserver-config)")
			ready = false
		}
	}
	observe(operatorv1alpha1.ConditionAuthenticationWebhookObserved, r.Authenticate, "/authenticate")
	observe(operatorv1alpha1.ConditionAuthorizationWebhookObserved, r.Authorize, "/authorize")

	b.Status.Policies = nil
	for _, k := range r.Kinds {
		loaded, failed := k.Counts()
		b.Status.Policies = append(b.Status.Policies, operatorv1alpha1.PolicyCount{Kind: k.Name, Loaded: int32(loaded), Failing: int32(failed)})
	}
	if ready {
		set(operatorv1alpha1.ConditionReady, true, "Ready", "every part of the bundle is working")
	} else {
		set(operatorv1alpha1.ConditionReady, false, "NotReady", "see the other conditions")
	}
	b.Status.ObservedGeneration = gen
	if !apiequality.Semantic.DeepEqual(before.Status, b.Status) {
		if err := r.Client.Status().Patch(ctx, &b, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{RequeueAfter: Resync}, nil
}

func (r *Reconciler) webhookDrift(ctx context.Context) ([]string, error) {
	if r.WebhookConfigurations == nil {
		return nil, nil
	}
	return r.WebhookConfigurations(ctx)
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

func certNotAfter(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return time.Time{}, fmt.Errorf("%s is not PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}, err
	}
	return c.NotAfter, nil
}

// SetupWithManager registers the controller (leader only) with one kick at
// start, so the default bundle is created. A change to a webhook
// configuration the operator keeps reconciles it too: its condition
// follows an edit and its restoration at once, not at the next resync.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	ours := builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[webhookconfig.ManagedByLabel] == "portcullis"
	}))
	bundle := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: operatorv1alpha1.DefaultName}}}
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&operatorv1alpha1.WebhookBundle{}).
		WatchesRawSource(kickOnce(operatorv1alpha1.DefaultName))
	if r.WebhookConfigurations != nil {
		b = b.Watches(&admissionregistrationv1.ValidatingWebhookConfiguration{}, bundle, ours).
			Watches(&admissionregistrationv1.MutatingWebhookConfiguration{}, bundle, ours)
	}
	for _, o := range []*Observed{r.Authenticate, r.Authorize} {
		if o != nil {
			b = b.WatchesRawSource(source.Channel(o.first, &handler.EnqueueRequestForObject{}))
		}
	}
	return b.Complete(r)
}
