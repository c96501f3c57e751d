package operator

import (
	"bytes"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/controllers/webhookconfig"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/certs"
)

// Keys of the certificate Secret, the layout cert-manager and
// kubernetes.io/tls Secrets use, plus the CA's key and the API server's
// client certificate.
const (
	secretCA         = "ca.crt"
	secretCAKey      = "ca.key"
	secretCert       = corev1.TLSCertKey
	secretKey        = corev1.TLSPrivateKeyKey
	SecretClientCert = "apiserver-client.crt"
	SecretClientKey  = "apiserver-client.key"
)

// RotateAnnotation on the WebhookBundle forces a new serving certificate:
// set it to any new value (a timestamp). The certificate Secret records the
// value it was rotated for in RotatedForAnnotation.
const (
	RotateAnnotation     = "portcullis.io/rotate-certificate"
	RotatedForAnnotation = "portcullis.io/rotated-for"
)

// CertRecheck is how often the leader looks at the certificate without an
// event: far more often than RenewBefore, so renewal is never late.
const CertRecheck = time.Hour

func bundleFromSecret(s *corev1.Secret) certs.Bundle {
	return certs.Bundle{CA: s.Data[secretCA], CAKey: s.Data[secretCAKey], Cert: s.Data[secretCert], Key: s.Data[secretKey]}
}

func secretData(b certs.Bundle) map[string][]byte {
	return map[string][]byte{secretCA: b.CA, secretCAKey: b.CAKey, secretCert: b.Cert, secretKey: b.Key}
}

// SeedCertificates runs before the manager starts: it makes sure the
// certificate Secret exists (creating it from seed, renewed for hosts,
// when absent: the first replica to start wins, the others read what it
// wrote) and writes its content into dir for the webhook server.
func SeedCertificates(ctx context.Context, c client.Client, ns, name string, hosts []string, seed certs.Bundle, dir string) error {
	var s corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		b := seed
		if _, err := b.Renew(hosts, time.Now(), false); err != nil {
			return err
		}
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "portcullis"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       secretData(b),
		}
		if err := c.Create(ctx, &s); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating the certificate Secret %s/%s: %w", ns, name, err)
		}
		err = c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	}
	if err != nil {
		return fmt.Errorf("reading the certificate Secret %s/%s: %w", ns, name, err)
	}
	return bundleFromSecret(&s).WriteDir(dir)
}

// CertificateReconciler keeps the certificate Secret valid (leader only):
// it renews the serving certificate before it expires, or when the
// WebhookBundle asks, under the same CA, so no API server has to change
// what it trusts. It keeps the API server's client certificate for the
// webhooks (ClientName) in the same Secret, renewed the same way, and
// publishes the API-server wiring rendered with both in the Secret
// WiringSecret: the kubeconfigs hold the client key, so they are secrets.
type CertificateReconciler struct {
	Client     client.Client
	Namespace  string
	SecretName string
	Hosts      []string
	// ClientName is the common name of the API server's client
	// certificate; empty issues none.
	ClientName string
	// Wiring, when set, is rendered into the Secret WiringSecret.
	Wiring       *apiserverconfig.Options
	WiringSecret string
}

func (r *CertificateReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var s corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}, &s); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var wb operatorv1alpha1.WebhookBundle
	want := ""
	if err := r.Client.Get(ctx, client.ObjectKey{Name: operatorv1alpha1.DefaultName}, &wb); err == nil {
		want = wb.Annotations[RotateAnnotation]
	}
	spec := wb.Spec
	force := want != "" && s.Annotations[RotatedForAnnotation] != want
	b := bundleFromSecret(&s)
	now := time.Now()
	changed, err := b.Renew(r.Hosts, now, force)
	if err != nil {
		return reconcile.Result{}, err
	}
	clientCert, clientKey := s.Data[SecretClientCert], s.Data[SecretClientKey]
	clientChanged := false
	if r.ClientName != "" && !certs.ClientValid(b.CA, clientCert, clientKey, r.ClientName, now) {
		// Issued before it is due: the one on the control-plane nodes
		// stays valid until its end, so the admin has RenewBefore to
		// copy the new wiring.
		if clientCert, clientKey, err = certs.IssueClient(b.CA, b.CAKey, r.ClientName, now); err != nil {
			return reconcile.Result{}, err
		}
		clientChanged = true
	}
	if changed || clientChanged {
		before := s.DeepCopy()
		s.Data = secretData(b)
		if clientCert != nil {
			s.Data[SecretClientCert], s.Data[SecretClientKey] = clientCert, clientKey
		}
		if force {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[RotatedForAnnotation] = want
		}
		if err := r.Client.Patch(ctx, &s, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, err
		}
		ctrl.LoggerFrom(ctx).Info("renewed the webhook certificates", "serving", changed, "forced", force, "apiServerClient", clientChanged)
	}
	if err := r.publishWiring(ctx, b.CA, clientCert, clientKey, &spec); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: CertRecheck}, nil
}

// publishWiring renders the API server's wiring with the current CA and
// client certificate into a Secret, so the files an admin copies to the
// control-plane nodes are always the ones matching the serving
// certificate. Its keys are the file names; the admission files are there
// for an API server whose admission calls are to present the certificate
// too (the operator's --authenticate-admission-callers).
func (r *CertificateReconciler) publishWiring(ctx context.Context, ca, clientCert, clientKey []byte, spec *operatorv1alpha1.WebhookBundleSpec) error {
	if r.Wiring == nil || r.WiringSecret == "" {
		return nil
	}
	o := *r.Wiring
	o.CABundle, o.ClientCertificate, o.ClientKey = ca, clientCert, clientKey
	o.AdmissionCallers = clientCert != nil
	applyWiring(&o, spec)
	rendered, err := apiserverconfig.Render(o)
	if err != nil {
		return fmt.Errorf("rendering the API server wiring: %w", err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.WiringSecret}}
	_, err = ctrl.CreateOrUpdate(ctx, r.Client, s, func() error {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels["app.kubernetes.io/managed-by"] = "portcullis"
		s.Type = corev1.SecretTypeOpaque
		s.Data = map[string][]byte{}
		for name, data := range rendered.Files() {
			s.Data[name] = data
		}
		return nil
	})
	if apierrors.IsAlreadyExists(err) {
		// Created by the reconcile before, not yet in the cache: its
		// event reconciles again.
		return nil
	}
	return err
}

// SetupWithManager watches the Secret and the WebhookBundle (for the
// rotation annotation), and kicks once at start.
func (r *CertificateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}}}
	})
	// The published wiring is watched too: an edit or a deletion is
	// undone at once.
	named := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && (o.GetName() == r.SecretName || (r.WiringSecret != "" && o.GetName() == r.WiringSecret))
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("certificate").
		Watches(&corev1.Secret{}, one, builder.WithPredicates(named)).
		Watches(&operatorv1alpha1.WebhookBundle{}, one, builder.WithPredicates(predicate.Or(predicate.AnnotationChangedPredicate{}, predicate.GenerationChangedPredicate{}))).
		WatchesRawSource(kickOnce(r.SecretName)).
		Complete(r)
}

// CertificateSync writes the certificate Secret's content into the webhook
// server's certificate directory on every replica; controller-runtime's
// certwatcher then serves the new certificate without a restart. When the
// CA changes it signals Changed, so the webhook configurations' caBundle
// follows.
type CertificateSync struct {
	Client     client.Client
	Namespace  string
	SecretName string
	Dir        string
	Changed    chan<- event.GenericEvent
}

func (r *CertificateSync) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var s corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}, &s); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	want := bundleFromSecret(&s)
	have := certs.ReadDir(r.Dir)
	if bytes.Equal(want.Cert, have.Cert) && bytes.Equal(want.Key, have.Key) && bytes.Equal(want.CA, have.CA) {
		return reconcile.Result{}, nil
	}
	if err := want.WriteDir(r.Dir); err != nil {
		return reconcile.Result{}, err
	}
	ctrl.LoggerFrom(ctx).Info("loaded a new webhook serving certificate")
	if !bytes.Equal(want.CA, have.CA) && r.Changed != nil {
		select {
		case r.Changed <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{}}:
		default:
		}
	}
	return reconcile.Result{}, nil
}

// SetupWithManager runs the sync on every replica.
func (r *CertificateSync) SetupWithManager(mgr ctrl.Manager) error {
	named := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetName() == r.SecretName
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("certificatesync").
		For(&corev1.Secret{}, builder.WithPredicates(named)).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(r)
}

// applyWiring applies the WebhookBundle's endpoint, authentication and
// authorization settings to the rendered wiring.
func applyWiring(o *apiserverconfig.Options, spec *operatorv1alpha1.WebhookBundleSpec) {
	if spec.Endpoint != nil {
		var ep webhookconfig.Endpoint
		applyEndpoint(&ep, spec.Endpoint)
		o.URL = ep.BaseURL()
	}
	if d := spec.Authentication.CacheTTL; d != nil {
		o.TokenCacheTTL = d.Duration
	}
	a := spec.Authorization
	if o.Authorization == nil {
		return
	}
	if a.Enabled != nil && !*a.Enabled {
		o.Authorization = nil
		return
	}
	az := *o.Authorization
	if a.FailurePolicy != "" {
		az.FailurePolicy = apiserverconfig.FailurePolicy(a.FailurePolicy)
	}
	if a.Timeout != nil {
		az.Timeout = a.Timeout.Duration
	}
	if a.AuthorizedTTL != nil {
		az.AuthorizedTTL = a.AuthorizedTTL.Duration
	}
	if a.UnauthorizedTTL != nil {
		az.UnauthorizedTTL = a.UnauthorizedTTL.Duration
	}
	o.Authorization = &az
}
