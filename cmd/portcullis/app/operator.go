package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	corev1 "k8s.io/api/core/v1"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	reportsv1alpha2 "github.com/portcullis-io/portcullis/api/wgpolicyk8s/v1alpha2"
	admissioncontrollers "github.com/portcullis-io/portcullis/controllers/admission"
	authncontrollers "github.com/portcullis-io/portcullis/controllers/authentication"
	authzcontrollers "github.com/portcullis-io/portcullis/controllers/authorization"
	operatorcontrollers "github.com/portcullis-io/portcullis/controllers/operator"
	"github.com/portcullis-io/portcullis/controllers/webhookconfig"
	admissionengine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/apiscopes"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/authz"
	"github.com/portcullis-io/portcullis/internal/certs"
	"github.com/portcullis-io/portcullis/internal/crds"
	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/nscache"
	"github.com/portcullis-io/portcullis/internal/opmetrics"
	"github.com/portcullis-io/portcullis/internal/paramcache"
	"github.com/portcullis-io/portcullis/internal/reviewhttp"
	admissionwebhook "github.com/portcullis-io/portcullis/webhooks/admission"
	authnwebhook "github.com/portcullis-io/portcullis/webhooks/authentication"
	authzwebhook "github.com/portcullis-io/portcullis/webhooks/authorization"
	"github.com/portcullis-io/portcullis/webhooks/ownkinds"
)

// DefaultNamespace is the operator's namespace unless --namespace or
// POD_NAMESPACE says otherwise.
const DefaultNamespace = "portcullis-system"

// DefaultWebhookPort is where the webhook server listens, as in the
// kubebuilder scaffold.
const DefaultWebhookPort = 9443

// LeaderElectionID names the Lease the replicas compete for.
const LeaderElectionID = "portcullis.portcullis.io"

// Names of the admission webhook configurations the operator keeps.
const (
	MutatingWebhookConfiguration   = "portcullis-mutate"
	ValidatingWebhookConfiguration = "portcullis-validate"
)

// OperatorServiceAccount is the operator's service account in its
// namespace (config/rbac): admission never sends its requests.
const OperatorServiceAccount = "portcullis-controller-manager"

// WiringSecret holds the API-server wiring rendered with the current CA
// and the API server's client certificate (`portcullis apiserver-config`
// renders the same files), one key per file, and WiringConfigDir is where
// its configurations expect them on the control-plane nodes.
const (
	WiringSecret    = "portcullis-apiserver-config"
	WiringConfigDir = "/etc/kubernetes/portcullis"
)

// APIServerClientName is the common name of the client certificate the
// API server presents to /authenticate and /authorize when callers are
// authenticated (Options.AuthenticateCallers).
const APIServerClientName = "portcullis-apiserver"

// OwnKindsWebhookConfiguration names the ValidatingWebhookConfiguration
// that validates Portcullis's own kinds, and ApprovalWebhookConfiguration
// the MutatingWebhookConfiguration that checks and records who may grant
// what AccessPolicies, StaticTokens and JWTAuthenticators grant.
const (
	OwnKindsWebhookConfiguration = "portcullis-policy-validation"
	ApprovalWebhookConfiguration = "portcullis-policy-approval"
)

// ApprovalKeySecret holds the key that signs approvals (package
// approval), shared by every replica and made by the first to start.
// Losing it leaves every approved object unserved until it is applied
// again.
const ApprovalKeySecret = "portcullis-approval-key"

// Options configure Run. cmd fills them from flags.
type Options struct {
	// RESTConfig reaches the API server; required.
	RESTConfig *rest.Config
	// Namespace is the operator's namespace.
	Namespace string
	// WebhookHost and WebhookPort: where the webhook server listens.
	WebhookHost string
	WebhookPort int
	// CertDir holds tls.crt and tls.key (and ca.crt). When CertHosts is
	// set, a CA and serving certificate for those hosts are created there if
	// missing or near expiry; otherwise the files must exist.
	CertDir   string
	CertHosts []string
	// MetricsAddr and ProbeAddr: "0" turns the listener off.
	// /metrics is served over HTTPS (a self-signed certificate) behind
	// controller-runtime's authentication and authorization filter, as the
	// kubebuilder scaffold serves it: a caller needs a bearer token that
	// the API server authenticates and may `get` the non-resource URL
	// /metrics. The decision log's metrics name users and policies, which
	// are not for anyone who can reach the port.
	MetricsAddr string
	// AuthenticateCallers serves /authenticate and /authorize only to a
	// caller presenting a client certificate for APIServerClientName from
	// the CA in CertDir: the API server, wired with the certificate in
	// apiserverconfig.Options. Others get 401.
	AuthenticateCallers bool
	// AuthenticateAdmissionCallers serves the admission paths (/mutate,
	// /validate and the validation of Portcullis's own kinds) only to the
	// same certificate: the API server presents it there when its
	// AdmissionConfiguration says so (apiserverconfig.Options.AdmissionCallers).
	// It implies AuthenticateCallers.
	AuthenticateAdmissionCallers bool
	// InsecureMetrics serves /metrics over plain HTTP to anyone, for a
	// scraper that cannot present a token; off by default.
	InsecureMetrics bool
	// ProbeAddr serves /healthz and /readyz; "0" turns it off.
	ProbeAddr string
	// LeaderElection makes controllers that write run on one replica.
	LeaderElection bool
	// RuntimeConfig turns group/versions off.
	RuntimeConfig RuntimeConfig
	// ServiceAccountIssuers are the API server's --service-account-issuer
	// values beyond the first, which its discovery document does not name:
	// no JWTAuthenticator may name them either.
	ServiceAccountIssuers []string
	// EnableHTTP2 turns HTTP/2 on for the webhook and metrics servers.
	EnableHTTP2 bool
	// ShutdownDrain is how long the webhook server keeps serving after ctx
	// is done, closing each connection after its answer
	// (DefaultShutdownDrain when zero; negative: none).
	ShutdownDrain time.Duration
	// Started, if set, is closed when the manager is running.
	Started chan<- struct{}
	// CertSecret, when set, keeps the CA and serving certificate in this
	// Secret of the operator's namespace: shared by every replica, renewed
	// by the leader, written into CertDir for the webhook server.
	CertSecret string
	// Endpoint is how the API server reaches the webhook server, written into
	// the webhook configurations the operator keeps.
	Endpoint webhookconfig.Endpoint
	// Admission failure policies and timeouts of the webhook configurations
	// the operator keeps; empty/zero take webhookconfig's defaults
	// (mutating Ignore 3s, validating Fail 5s).
	MutatingFailurePolicy, ValidatingFailurePolicy   admissionregistrationv1.FailurePolicyType
	MutatingTimeoutSeconds, ValidatingTimeoutSeconds int32
	// SkipControllerNameValidation allows several operators in one process,
	// as the end-to-end tests run them.
	SkipControllerNameValidation bool
	// DecisionLog receives one line per decision. It is a record, not a
	// diagnostic: its sink must not sample or drop lines (see
	// cmd/portcullis's loggers). ctrl.Log.WithName("decision") when unset.
	DecisionLog logr.Logger
}

// NewScheme returns a scheme with the built-in kinds and ours.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, authnv1alpha1.AddToScheme, authzv1alpha1.AddToScheme, admissionv1alpha1.AddToScheme, operatorv1alpha1.AddToScheme, reportsv1alpha2.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// The operator applies its own CRDs (crds.Install) and only creates the
// Policy Reports ones (crds.CreateIfAbsent): it may change no other.
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=update;patch,resourceNames=accesspolicies.authorization.portcullis.io;jwtauthenticators.authentication.portcullis.io;mutationpolicies.admission.portcullis.io;policyexceptions.admission.portcullis.io;statictokens.authentication.portcullis.io;validationpolicies.admission.portcullis.io;webhookbundles.operator.portcullis.io
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=portcullis-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=portcullis-system,resources=events,verbs=create;patch

// Run installs the CRDs and runs the manager until ctx ends.
func Run(ctx context.Context, o Options) error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	installed, approvalKey, err := prepareCluster(ctx, o, scheme)
	if err != nil {
		return err
	}
	w, err := newWiring(ctx, o, scheme, approvalKey)
	if err != nil {
		return err
	}
	for _, phase := range []func(context.Context) error{w.authentication, w.authorization, w.admission} {
		if err := phase(ctx); err != nil {
			return err
		}
	}
	if err := w.ownKinds(scheme); err != nil {
		return err
	}
	if err := w.configurations(installed); err != nil {
		return err
	}
	// Several operators in one process (tests) share the first one's
	// collector; in a pod there is one.
	if err := ctrlmetrics.Registry.Register(opmetrics.New(w.kinds, w.phases, filepath.Join(o.CertDir, certs.CertFile))); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}
	if o.Started != nil {
		started := o.Started
		if err := w.mgr.Add(runnableFunc(func(ctx context.Context) error { close(started); <-ctx.Done(); return nil })); err != nil {
			return err
		}
	}
	w.log.Info("starting", "namespace", o.Namespace, "webhookPort", w.port)
	return w.mgr.Start(ctx)
}

// withDefaults fills in what o leaves unset.
func (o Options) withDefaults() (Options, error) {
	if o.RESTConfig == nil {
		return o, errors.New("operator: no API server configuration")
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.RuntimeConfig == nil {
		rc, err := ParseRuntimeConfig(nil)
		if err != nil {
			return o, err
		}
		o.RuntimeConfig = rc
	}
	if o.WebhookPort == 0 {
		o.WebhookPort = DefaultWebhookPort
	}
	if o.ShutdownDrain == 0 {
		o.ShutdownDrain = DefaultShutdownDrain
	}
	return o, nil
}

// prepareCluster does, before the manager starts, what its informers and
// webhooks need: the serving certificate (a local run's files, or the
// Secret every replica serves), our CRDs and the Policy Reports', and the
// approval key. It returns the CRDs installed.
func prepareCluster(ctx context.Context, o Options, scheme *runtime.Scheme) ([]*apiextensionsv1.CustomResourceDefinition, approval.Key, error) {
	if len(o.CertHosts) > 0 && o.CertSecret == "" {
		if _, err := certs.Ensure(o.CertDir, o.CertHosts, time.Now()); err != nil {
			return nil, approval.Key{}, fmt.Errorf("webhook certificate in %s: %w", o.CertDir, err)
		}
	}
	setupClient, err := client.New(o.RESTConfig, client.Options{Scheme: scheme})
	if err != nil {
		return nil, approval.Key{}, err
	}
	all, err := crds.Load()
	if err != nil {
		return nil, approval.Key{}, fmt.Errorf("reading embedded CRDs: %w", err)
	}
	installed := crds.Filter(all, o.RuntimeConfig.Enabled)
	if err := crds.Install(ctx, setupClient, installed); err != nil {
		return nil, approval.Key{}, err
	}
	// The Policy Reports API the audit writes, unless another tool has it.
	if o.RuntimeConfig.Enabled(admissionv1alpha1.GroupVersion.Group, admissionv1alpha1.GroupVersion.Version) {
		if err := crds.CreateIfAbsent(ctx, setupClient, crds.Foreign(all)); err != nil {
			return nil, approval.Key{}, err
		}
	}
	if o.CertSecret != "" {
		// Every replica serves the certificate kept in the Secret, so they
		// all share one CA; files already in the directory (a local run's
		// CA, which the API server trusts) seed a Secret that does not
		// exist yet.
		if err := operatorcontrollers.SeedCertificates(ctx, setupClient, o.Namespace, o.CertSecret, o.CertHosts, certs.ReadDir(o.CertDir), o.CertDir); err != nil {
			return nil, approval.Key{}, err
		}
	}
	approvalKey, err := approval.SeedKey(ctx, setupClient, o.Namespace, ApprovalKeySecret)
	if err != nil {
		return nil, approval.Key{}, err
	}
	return installed, approvalKey, nil
}

// wiring is what the steps of Run share: the options, the manager and its
// webhook server, and what each phase leaves for the steps after it.
type wiring struct {
	o      Options
	log    logr.Logger
	mgr    ctrl.Manager
	server webhook.Server
	port   int
	rec    *decision.Recorder
	// guard keeps /authenticate and /authorize to the API server when
	// callers are authenticated, and guardAdmission the admission paths
	// when admission callers are.
	guard, guardAdmission func(http.Handler) http.Handler
	approvalKey           approval.Key

	authnOn, authzOn, admissionOn, bundleOn bool
	// The CEL environments are costly to build: one of each, shared by
	// the controllers and the validating webhook; nil for the groups that
	// are off.
	authnCEL authenticationcel.Compiler
	authzCEL authorizationcel.Compiler
	// saIssuers are the API server's service-account issuers, which no
	// JWTAuthenticator may name.
	saIssuers    *serviceAccountIssuers
	admissionCEL *admissionengine.Compiler
	// authzExclusions is what the authorization wiring the operator
	// renders keeps from the webhook: AccessPolicies that name it say so.
	authzExclusions apiserverconfig.Exclusions

	// changes tells the webhook-configuration reconciler that the rules or
	// the CA changed; one pending signal is enough, as it reads both anew.
	changes chan event.GenericEvent
	// ca is the webhook CA file (ca.crt in the certificate directory),
	// looked at every certs.CARecheck: callers are verified against it,
	// and a change signals changes, so that the configurations' caBundle
	// follows a CA that cert-manager (no --cert-secret) renews.
	ca *certs.CAWatch
	// admissionCfg is the admission webhooks' configuration; nil when the
	// group is off.
	admissionCfg *webhookconfig.Admission
	kinds        []opmetrics.Kind
	phases       []opmetrics.Phase
	// Calls seen from the API server, for the WebhookBundle's status.
	authnSeen, authzSeen *operatorcontrollers.Observed
}

// newWiring builds the manager and its webhook server, TLS and health
// checks, and the decision recorder every phase records with.
func newWiring(ctx context.Context, o Options, scheme *runtime.Scheme, approvalKey approval.Key) (*wiring, error) {
	enabled := func(gv schema.GroupVersion) bool { return o.RuntimeConfig.Enabled(gv.Group, gv.Version) }
	w := &wiring{
		o: o, log: ctrl.Log.WithName("operator"), port: o.WebhookPort, approvalKey: approvalKey,
		authnOn: enabled(authnv1alpha1.GroupVersion), authzOn: enabled(authzv1alpha1.GroupVersion),
		admissionOn: enabled(admissionv1alpha1.GroupVersion), bundleOn: enabled(operatorv1alpha1.GroupVersion),
		changes: make(chan event.GenericEvent, 1),
	}
	w.ca = &certs.CAWatch{Path: filepath.Join(o.CertDir, certs.CAFile), Changed: w.signalChange}
	// HTTP/2 is off unless asked for: the HTTP/2 Stream Cancellation and
	// Rapid Reset CVEs (GHSA-qppj-fm5r-hxr3, GHSA-4374-p667-p6c8) make it a
	// denial-of-service risk, and the API server's webhook clients speak
	// HTTP/1.1 fine.
	tlsOpts := []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if !o.EnableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
	webhookTLS := tlsOpts
	var callers *reviewhttp.Callers
	if o.AuthenticateCallers || o.AuthenticateAdmissionCallers {
		// Every client is asked for a certificate, verified in the
		// handshake when given; /authenticate and /authorize want one
		// (reviewhttp.Callers), the other paths do not.
		callers = &reviewhttp.Callers{CA: w.ca, CommonName: APIServerClientName}
		webhookTLS = append(append([]func(*tls.Config){}, tlsOpts...), callers.TLSConfig)
	}
	w.guard = func(h http.Handler) http.Handler {
		if callers == nil {
			return h
		}
		return callers.Wrap(h)
	}
	w.guardAdmission = func(h http.Handler) http.Handler {
		if !o.AuthenticateAdmissionCallers {
			return h
		}
		return w.guard(h)
	}
	draining := &drainingServer{Server: webhook.NewServer(webhook.Options{
		Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.CertDir,
		CertName: certs.CertFile, KeyName: certs.KeyFile, TLSOpts: webhookTLS,
	}), shutdown: ctx.Done(), drain: max(o.ShutdownDrain, 0)}

	mgr, err := ctrl.NewManager(o.RESTConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOptions(o, tlsOpts),
		HealthProbeBindAddress:  o.ProbeAddr,
		Controller:              config.Controller{SkipNameValidation: ptr.To(o.SkipControllerNameValidation)},
		WebhookServer:           draining,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.Namespace,
		// Leave the lease at once on shutdown so that another replica takes
		// over without waiting for it to expire.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			// Least privilege, and memory that does not grow with the
			// cluster: Secrets and ConfigMaps are cached in our namespace
			// only (the ones the operator reads are there), never
			// cluster-wide.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}:    {Namespaces: map[string]cache.Config{o.Namespace: {}}},
				&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	w.mgr = mgr
	if err := mgr.Add(w.ca); err != nil {
		return nil, err
	}
	decisionLog := o.DecisionLog
	if decisionLog.GetSink() == nil {
		decisionLog = ctrl.Log.WithName("decision")
	}
	if w.rec, err = decision.NewRecorder(decisionLog, ctrlmetrics.Registry); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// The manager starts the webhook server only once it has been asked
	// for it: take it from the manager from here on.
	w.server = mgr.GetWebhookServer()
	if err := mgr.AddReadyzCheck("webhook", w.server.StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("not-draining", draining.Draining); err != nil {
		return nil, err
	}
	if w.authnOn {
		w.authnCEL = authenticationcel.NewDefaultCompiler()
		w.saIssuers = &serviceAccountIssuers{cfg: mgr.GetConfig(), log: w.log.WithName("issuers"), retry: 30 * time.Second,
			configured: o.ServiceAccountIssuers}
	}
	if w.authzOn {
		w.authzCEL = authorizationcel.NewDefaultCompiler()
	}
	if w.admissionOn {
		if w.admissionCEL, err = admissionengine.NewCompiler(); err != nil {
			return nil, fmt.Errorf("admission CEL environment: %w", err)
		}
	}
	w.authzExclusions, err = apiserverconfig.AuthorizationOptions{OperatorNamespace: o.Namespace, OperatorServiceAccount: OperatorServiceAccount}.Exclusions()
	if err != nil {
		return nil, err
	}
	return w, nil
}

// signalChange tells the webhook-configuration reconciler to read the
// rules and the CA anew. It never blocks: one pending signal is enough,
// and on a follower nothing reads it.
func (w *wiring) signalChange() {
	select {
	case w.changes <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{}}:
	default:
	}
}

// phaseOff logs a phase that --runtime-config turns off.
func (w *wiring) phaseOff(gv schema.GroupVersion) error {
	w.log.Info("phase off by --runtime-config", "group", gv.String())
	return nil
}

// authentication serves /authenticate from StaticTokens and
// JWTAuthenticators.
func (w *wiring) authentication(ctx context.Context) error {
	if !w.authnOn {
		return w.phaseOff(authnv1alpha1.GroupVersion)
	}
	engine := authn.NewEngine(nil)
	registry := authn.NewRegistry(engine)
	if err := authncontrollers.Setup(ctx, authncontrollers.Deps{
		Manager: w.mgr, Namespace: w.o.Namespace, Registry: registry, Compiler: w.authnCEL, Approvals: w.approvalKey,
		DisallowedIssuers: w.disallowedIssuers,
	}); err != nil {
		return fmt.Errorf("setting up authentication controllers: %w", err)
	}
	w.authnSeen = operatorcontrollers.NewObserved()
	w.server.Register(authnwebhook.Path, w.guard(&authnwebhook.Webhook{Engine: engine, Recorder: w.rec, Observed: w.authnSeen.Mark}))
	w.kinds = append(w.kinds,
		opmetrics.Kind{Name: authn.KindStaticToken, Counts: func() (int, int) { return registry.Counts(authn.KindStaticToken) }},
		opmetrics.Kind{Name: authn.KindJWTAuthenticator, Counts: func() (int, int) { return registry.Counts(authn.KindJWTAuthenticator) }})
	w.phases = append(w.phases, opmetrics.Phase{Name: decision.PhaseAuthenticate, Generation: func() uint64 { return engine.Snapshot().Generation }})
	if err := w.mgr.AddReadyzCheck("authentication-snapshot", snapshotReady("authentication", engine.Ready)); err != nil {
		return err
	}
	w.log.Info("phase on", "phase", decision.PhaseAuthenticate, "path", authnwebhook.Path)
	return nil
}

// authorization serves /authorize from AccessPolicies.
func (w *wiring) authorization(ctx context.Context) error {
	if !w.authzOn {
		return w.phaseOff(authzv1alpha1.GroupVersion)
	}
	namespaces, err := nscache.New(ctx, w.mgr)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(w.mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	scopes := apiscopes.New(disc)
	if err := w.mgr.Add(scopes); err != nil {
		return err
	}
	engine := authz.NewEngine(namespaces, scopes)
	registry := authz.NewRegistry(engine)
	if err := authzcontrollers.Setup(authzcontrollers.Deps{Manager: w.mgr, Registry: registry, Compiler: w.authzCEL, Approvals: w.approvalKey, Exclusions: w.authzExclusions}); err != nil {
		return fmt.Errorf("setting up authorization controllers: %w", err)
	}
	w.authzSeen = operatorcontrollers.NewObserved()
	w.server.Register(authzwebhook.Path, w.guard(&authzwebhook.Webhook{Engine: engine, Recorder: w.rec, Observed: w.authzSeen.Mark}))
	w.kinds = append(w.kinds, opmetrics.Kind{Name: authz.KindAccessPolicy, Counts: func() (int, int) { return engine.Snapshot().Counts() }})
	w.phases = append(w.phases, opmetrics.Phase{Name: decision.PhaseAuthorize, Generation: func() uint64 { return engine.Snapshot().Generation }})
	if err := w.mgr.AddReadyzCheck("authorization-snapshot", snapshotReady("authorization", engine.Ready)); err != nil {
		return err
	}
	w.log.Info("phase on", "phase", decision.PhaseAuthorize, "path", authzwebhook.Path)
	return nil
}

// admission serves /mutate and /validate from MutationPolicies,
// ValidationPolicies and PolicyExceptions, runs natively what the API
// server can run, and audits what exists.
func (w *wiring) admission(ctx context.Context) error {
	if !w.admissionOn {
		return w.phaseOff(admissionv1alpha1.GroupVersion)
	}
	mgr, o := w.mgr, w.o
	namespaces, err := nscache.New(ctx, mgr)
	if err != nil {
		return err
	}
	// applyConfiguration merges under the object's schema: built-in
	// kinds from client-go's, others from the API server's OpenAPI
	// (fetched once per group version and refreshed as it changes),
	// as the API server's MutatingAdmissionPolicy does.
	openapi, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	schemas := patch.NewTypeConverterManager(admissionengine.StaticTypeConverter(), openapi.OpenAPIV3())
	if err := mgr.Add(runnableFunc(func(ctx context.Context) error { schemas.Run(ctx); return nil })); err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	params := paramcache.New(ctx, dyn, mgr.GetRESTMapper())
	pair := admissionengine.NewEngines(namespaces, params)
	mutEngine, valEngine := pair.Mutation, pair.Validation
	mutEngine.UseTypeConverters(&admissionengine.BoundedTypeConverters{Source: schemas, Timeout: 500 * time.Millisecond})
	w.server.Register(admissionwebhook.MutatePath, w.guardAdmission(&admissionwebhook.Mutator{Engine: mutEngine, Recorder: w.rec}))
	w.server.Register(admissionwebhook.ValidatePath, w.guardAdmission(&admissionwebhook.Validator{Engine: valEngine, Recorder: w.rec}))
	w.kinds = append(w.kinds,
		opmetrics.Kind{Name: admissionengine.KindMutationPolicy, Counts: pair.Mutations.Counts},
		opmetrics.Kind{Name: admissionengine.KindValidationPolicy, Counts: pair.Validations.Counts},
		opmetrics.Kind{Name: admissionengine.KindPolicyException, Counts: pair.Exceptions.Counts})
	w.phases = append(w.phases,
		opmetrics.Phase{Name: decision.PhaseMutate, Generation: func() uint64 { return mutEngine.Snapshot().Generation }},
		opmetrics.Phase{Name: decision.PhaseValidate, Generation: func() uint64 { return valEngine.Snapshot().Generation }})
	if err := mgr.AddReadyzCheck("admission-snapshot", snapshotReady("admission", func() bool { return mutEngine.Ready() && valEngine.Ready() })); err != nil {
		return err
	}
	w.admissionCfg = &webhookconfig.Admission{
		MutatingName: MutatingWebhookConfiguration, ValidatingName: ValidatingWebhookConfiguration,
		MutatePath: admissionwebhook.MutatePath, ValidatePath: admissionwebhook.ValidatePath,
		MutatingFailurePolicy: o.MutatingFailurePolicy, ValidatingFailurePolicy: o.ValidatingFailurePolicy,
		MutatingTimeoutSeconds: o.MutatingTimeoutSeconds, ValidatingTimeoutSeconds: o.ValidatingTimeoutSeconds,
		// Never lock the cluster out: kube-system and our own namespace
		// are not sent, nor is the operator's own service account.
		ExcludedNamespaces: []string{"kube-system", o.Namespace},
		ExcludedUsers:      []string{serviceaccount.MakeUsername(o.Namespace, OperatorServiceAccount)},
		Rules: func() (mutating, validating []admissionregistrationv1.RuleWithOperations) {
			return mutEngine.Snapshot().Rules(), valEngine.Snapshot().Rules()
		},
		Ready: func() bool { return mutEngine.Ready() && valEngine.Ready() },
	}
	native, err := nativeExecution(mgr, *w.admissionCfg, w.bundleOn)
	if err != nil {
		return err
	}
	if err := admissioncontrollers.Setup(admissioncontrollers.Deps{
		Manager: mgr, Compiler: w.admissionCEL, Changes: w.changes, Mutations: pair.Mutations, Validations: pair.Validations,
		Exceptions: pair.Exceptions, Approvals: w.approvalKey, Params: params, Native: native,
		Audit: &admissioncontrollers.AuditDeps{
			Settings: auditSettings(mgr.GetClient(), w.admissionCfg.ExcludedNamespaces, w.bundleOn), Namespaces: namespaces, Params: params,
			Dynamic: dyn, Mapper: mgr.GetRESTMapper(), Ready: valEngine.Ready, Exceptions: valEngine, ParamChanges: params.Changes,
			Metrics: ctrlmetrics.Registry,
		},
	}); err != nil {
		return fmt.Errorf("setting up admission controllers: %w", err)
	}
	w.log.Info("phase on", "phase", decision.PhaseMutate+"+"+decision.PhaseValidate, "paths", []string{admissionwebhook.MutatePath, admissionwebhook.ValidatePath})
	return nil
}

// ownKinds serves the webhooks of our own kinds, for the groups that are
// on: /validate-portcullis checks at apply time what the CRD schemas
// cannot, and /approve-portcullis checks the author of the kinds that
// grant permissions or an identity for what they grant.
func (w *wiring) ownKinds(scheme *runtime.Scheme) error {
	decoder := ownkinds.NewDecoder(scheme)
	w.server.Register(ownkinds.Path, w.guardAdmission(admissionwebhook.Handler(&ownkinds.Validator{
		Decoder: decoder, AuthnCompiler: w.authnCEL, AuthzCompiler: w.authzCEL,
		AuthzExclusions: w.authzExclusions, AdmissionCompiler: w.admissionCEL, Key: w.approvalKey,
		DisallowedIssuers: w.disallowedIssuers, SecretNamespace: w.o.Namespace,
	})))
	if err := w.mgr.Add(&approval.KeyWatch{Client: w.mgr.GetClient(), Namespace: w.o.Namespace, Name: ApprovalKeySecret, Key: w.approvalKey}); err != nil {
		return err
	}
	w.server.Register(ownkinds.ApprovePath, w.guardAdmission(admissionwebhook.Handler(&ownkinds.Approver{
		Decoder: decoder, AuthnCompiler: w.authnCEL, AuthzCompiler: w.authzCEL, Admission: w.admissionOn, Client: w.mgr.GetClient(), Key: w.approvalKey,
		SecretNamespace: w.o.Namespace,
	})))
	return nil
}

// ownKindsRules are the rules of our own kinds' webhooks: every kind of
// the groups that are on for validation, the kinds that grant
// permissions or an identity for approval (a PolicyException is as
// powerful as editing the policies it names).
func (w *wiring) ownKindsRules() (validation, approvals []admissionregistrationv1.RuleWithOperations) {
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	rule := func(gv schema.GroupVersion, resources ...string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{gv.Group}, APIVersions: []string{gv.Version}, Resources: resources,
		}}
	}
	if w.authnOn {
		validation = append(validation, rule(authnv1alpha1.GroupVersion, "jwtauthenticators", "statictokens"))
		approvals = append(approvals, rule(authnv1alpha1.GroupVersion, "jwtauthenticators", "statictokens"))
	}
	if w.authzOn {
		validation = append(validation, rule(authzv1alpha1.GroupVersion, "accesspolicies"))
		approvals = append(approvals, rule(authzv1alpha1.GroupVersion, "accesspolicies"))
	}
	if w.admissionOn {
		validation = append(validation, rule(admissionv1alpha1.GroupVersion, "mutationpolicies", "validationpolicies", "policyexceptions"))
		approvals = append(approvals, rule(admissionv1alpha1.GroupVersion, "policyexceptions"))
	}
	return validation, approvals
}

// configurations keeps what the API server is wired with: the webhook
// configurations, the serving certificate and the rendered wiring (when
// it is kept in a Secret), and the WebhookBundle's status.
func (w *wiring) configurations(installed []*apiextensionsv1.CustomResourceDefinition) error {
	mgr, o := w.mgr, w.o
	ownRules, approvalRules := w.ownKindsRules()
	caFile := filepath.Join(o.CertDir, certs.CAFile)
	wc := &webhookconfig.Reconciler{
		Client: mgr.GetClient(),
		OwnKinds: webhookconfig.OwnKinds{Name: OwnKindsWebhookConfiguration, Path: ownkinds.Path, Rules: ownRules,
			ApprovalName: ApprovalWebhookConfiguration, ApprovalPath: ownkinds.ApprovePath, ApprovalRules: approvalRules},
		Admission: w.admissionCfg,
		Changes:   w.changes,
		Endpoint:  o.Endpoint,
		CABundle:  func() ([]byte, error) { return os.ReadFile(caFile) },
	}
	if w.bundleOn {
		wc.Overrides, wc.Watch = operatorcontrollers.Overrides(mgr.GetClient()), &operatorv1alpha1.WebhookBundle{}
	}
	if err := wc.SetupWithManager(mgr); err != nil {
		return err
	}
	if o.CertSecret != "" {
		if err := (&operatorcontrollers.CertificateSync{
			Client: mgr.GetClient(), Namespace: o.Namespace, SecretName: o.CertSecret, Dir: o.CertDir, Changed: w.changes,
		}).SetupWithManager(mgr); err != nil {
			return err
		}
		wiring := &apiserverconfig.Options{URL: o.Endpoint.BaseURL(), ConfigDir: WiringConfigDir}
		if w.authzOn {
			wiring.Authorization = &apiserverconfig.AuthorizationOptions{OperatorNamespace: o.Namespace, OperatorServiceAccount: OperatorServiceAccount}
		}
		if err := (&operatorcontrollers.CertificateReconciler{
			Client: mgr.GetClient(), Namespace: o.Namespace, SecretName: o.CertSecret, Hosts: o.CertHosts,
			ClientName: APIServerClientName, Wiring: wiring, WiringSecret: WiringSecret,
		}).SetupWithManager(mgr); err != nil {
			return err
		}
	}
	if !w.bundleOn {
		return nil
	}
	var crdNames []string
	for _, crd := range installed {
		crdNames = append(crdNames, crd.Name)
	}
	wb := &operatorcontrollers.Reconciler{
		Client: mgr.GetClient(), CertFile: filepath.Join(o.CertDir, certs.CertFile), CRDs: crdNames,
		WebhookConfigurations: wc.Drift,
		Authenticate:          w.authnSeen, Authorize: w.authzSeen, Kinds: w.kinds,
	}
	return wb.SetupWithManager(mgr)
}

// snapshotReady is a readiness check that fails until a phase serves its
// first complete snapshot: a replica is not ready before its caches sync.
func snapshotReady(phase string, ready func() bool) healthz.Checker {
	return func(*http.Request) error {
		if !ready() {
			return fmt.Errorf("%s policies are still loading", phase)
		}
		return nil
	}
}

type runnableFunc func(context.Context) error

func (f runnableFunc) Start(ctx context.Context) error { return f(ctx) }
func (f runnableFunc) NeedLeaderElection() bool        { return false }

// metricsOptions serves /metrics over HTTPS behind authentication and
// authorization (Options.MetricsAddr), unless o.InsecureMetrics.
func metricsOptions(o Options, tlsOpts []func(*tls.Config)) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.MetricsAddr, TLSOpts: tlsOpts}
	if !o.InsecureMetrics {
		m.SecureServing = true
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return m
}

// auditSettings reads the background audit's settings from the cached
// WebhookBundle (defaults when its group is off or it is absent): the
// audit reads them at every tick of its loop.
func auditSettings(r client.Reader, excluded []string, bundleOn bool) func(context.Context) (admissioncontrollers.AuditSettings, error) {
	return func(ctx context.Context) (admissioncontrollers.AuditSettings, error) {
		s := admissioncontrollers.AuditSettings{Interval: time.Hour, MaxResults: 1000, Excluded: excluded}
		if !bundleOn {
			return s, nil
		}
		var b operatorv1alpha1.WebhookBundle
		if err := r.Get(ctx, client.ObjectKey{Name: operatorv1alpha1.DefaultName}, &b); err != nil {
			return s, client.IgnoreNotFound(err)
		}
		a := b.Spec.Admission.Audit
		s.Disabled = a.Disabled
		if a.Interval != nil && a.Interval.Duration > 0 {
			s.Interval = a.Interval.Duration
		}
		if a.MaxResultsPerReport > 0 {
			s.MaxResults = int(a.MaxResultsPerReport)
		}
		s.Excluded = append(append([]string(nil), excluded...), b.Spec.Admission.ExcludedNamespaces...)
		return s, nil
	}
}

// nativeExecution is what the native execution reconciler needs: which
// native kinds the API server serves, and the settings it reads from the
// WebhookBundle (when its group is on) over the operator's own, so that
// the generated policies exclude what the webhooks exclude.
func nativeExecution(mgr ctrl.Manager, base webhookconfig.Admission, bundleOn bool) (*admissioncontrollers.NativeDeps, error) {
	serves := func(kind string) (bool, error) {
		_, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: admissionregistrationv1.GroupName, Kind: kind}, "v1")
		switch {
		case err == nil:
			return true, nil
		case meta.IsNoMatchError(err):
			return false, nil
		}
		return false, fmt.Errorf("discovering %s: %w", kind, err)
	}
	vap, err := serves("ValidatingAdmissionPolicy")
	if err != nil {
		return nil, err
	}
	mapServed, err := serves("MutatingAdmissionPolicy")
	if err != nil {
		return nil, err
	}
	d := &admissioncontrollers.NativeDeps{ServesVAP: vap, ServesMAP: mapServed}
	var overrides func(ctx context.Context, a *webhookconfig.Admission, ep *webhookconfig.Endpoint) error
	if bundleOn {
		overrides, d.Watch = operatorcontrollers.Overrides(mgr.GetClient()), &operatorv1alpha1.WebhookBundle{}
	}
	d.Settings = func(ctx context.Context) (admissioncontrollers.NativeSettings, error) {
		a, ep := base, webhookconfig.Endpoint{}
		if overrides != nil {
			if err := overrides(ctx, &a, &ep); err != nil {
				return admissioncontrollers.NativeSettings{}, err
			}
		}
		return admissioncontrollers.NativeSettings{
			Native:           !a.Webhook,
			Exclusions:       admissionengine.Exclusions{Namespaces: a.ExcludedNamespaces, Conditions: a.ExclusionConditions()},
			MutatingDisabled: a.MutatingDisabled, ValidatingDisabled: a.ValidatingDisabled,
			MutatingWebhook: a.MutatingName, ValidatingWebhook: a.ValidatingName,
		}, nil
	}
	return d, nil
}

// disallowedIssuers is saIssuers.Get, none (and known) while
// authentication is off.
func (w *wiring) disallowedIssuers() ([]string, bool) {
	if w.saIssuers == nil {
		return nil, true
	}
	return w.saIssuers.Get()
}
