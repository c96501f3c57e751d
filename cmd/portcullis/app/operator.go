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

// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=portcullis-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=portcullis-system,resources=events,verbs=create;patch

// Run installs the CRDs and runs the manager until ctx ends.
func Run(ctx context.Context, o Options) error {
	log := ctrl.Log.WithName("operator")
	if o.RESTConfig == nil {
		return errors.New("operator: no API server configuration")
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.RuntimeConfig == nil {
		rc, err := ParseRuntimeConfig(nil)
		if err != nil {
			return err
		}
		o.RuntimeConfig = rc
	}
	if len(o.CertHosts) > 0 && o.CertSecret == "" {
		if _, err := certs.Ensure(o.CertDir, o.CertHosts, time.Now()); err != nil {
			return fmt.Errorf("webhook certificate in %s: %w", o.CertDir, err)
		}
	}
	scheme, err := NewScheme()
	if err != nil {
		return err
	}

	// Install our CRDs before the manager starts, so informers find them.
	setupClient, err := client.New(o.RESTConfig, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	all, err := crds.Load()
	if err != nil {
		return fmt.Errorf("reading embedded CRDs: %w", err)
	}
	installed := crds.Filter(all, o.RuntimeConfig.Enabled)
	if err := crds.Install(ctx, setupClient, installed); err != nil {
		return err
	}
	// The Policy Reports API the audit writes, unless another tool has it.
	if o.RuntimeConfig.Enabled(admissionv1alpha1.GroupVersion.Group, admissionv1alpha1.GroupVersion.Version) {
		if err := crds.CreateIfAbsent(ctx, setupClient, crds.Foreign(all)); err != nil {
			return err
		}
	}
	if o.CertSecret != "" {
		// Every replica serves the certificate kept in the Secret, so they
		// all share one CA; files already in the directory (a local run's
		// CA, which the API server trusts) seed a Secret that does not
		// exist yet.
		if err := operatorcontrollers.SeedCertificates(ctx, setupClient, o.Namespace, o.CertSecret, o.CertHosts, certs.ReadDir(o.CertDir), o.CertDir); err != nil {
			return err
		}
	}

	approvalKey, err := approval.SeedKey(ctx, setupClient, o.Namespace, ApprovalKeySecret)
	if err != nil {
		return err
	}

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
	port := o.WebhookPort
	if port == 0 {
		port = DefaultWebhookPort
	}
	webhookTLS := tlsOpts
	var callers *reviewhttp.Callers
	if o.AuthenticateCallers || o.AuthenticateAdmissionCallers {
		// Every client is asked for a certificate, verified in the
		// handshake when given; /authenticate and /authorize want one
		// (reviewhttp.Callers), the other paths do not.
		callers = &reviewhttp.Callers{CAFile: filepath.Join(o.CertDir, certs.CAFile), CommonName: APIServerClientName}
		webhookTLS = append(append([]func(*tls.Config){}, tlsOpts...), callers.TLSConfig)
	}
	// guard keeps /authenticate and /authorize to the API server when
	// callers are authenticated, and guardAdmission the admission paths
	// when admission callers are.
	guard := func(h http.Handler) http.Handler {
		if callers == nil {
			return h
		}
		return callers.Wrap(h)
	}
	guardAdmission := func(h http.Handler) http.Handler {
		if !o.AuthenticateAdmissionCallers {
			return h
		}
		return guard(h)
	}
	drain := o.ShutdownDrain
	if drain == 0 {
		drain = DefaultShutdownDrain
	}
	draining := &drainingServer{Server: webhook.NewServer(webhook.Options{
		Host: o.WebhookHost, Port: port, CertDir: o.CertDir,
		CertName: certs.CertFile, KeyName: certs.KeyFile, TLSOpts: webhookTLS,
	}), shutdown: ctx.Done(), drain: max(drain, 0)}
	var webhookServer webhook.Server = draining

	mgr, err := ctrl.NewManager(o.RESTConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOptions(o, tlsOpts),
		HealthProbeBindAddress:  o.ProbeAddr,
		Controller:              config.Controller{SkipNameValidation: ptr.To(o.SkipControllerNameValidation)},
		WebhookServer:           webhookServer,
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
		return fmt.Errorf("creating the manager: %w", err)
	}
	decisionLog := o.DecisionLog
	if decisionLog.GetSink() == nil {
		decisionLog = ctrl.Log.WithName("decision")
	}
	rec, err := decision.NewRecorder(decisionLog, ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// The manager starts the webhook server only once it has been asked
	// for it: take it from the manager from here on.
	webhookServer = mgr.GetWebhookServer()
	if err := mgr.AddReadyzCheck("webhook", webhookServer.StartedChecker()); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("not-draining", draining.Draining); err != nil {
		return err
	}

	var kinds []opmetrics.Kind
	var phases []opmetrics.Phase
	// Calls seen from the API server, for the WebhookBundle's status.
	var authnSeen, authzSeen *operatorcontrollers.Observed
	authnOn := o.RuntimeConfig.Enabled(authnv1alpha1.GroupVersion.Group, authnv1alpha1.GroupVersion.Version)
	authzOn := o.RuntimeConfig.Enabled(authzv1alpha1.GroupVersion.Group, authzv1alpha1.GroupVersion.Version)
	admissionOn := o.RuntimeConfig.Enabled(admissionv1alpha1.GroupVersion.Group, admissionv1alpha1.GroupVersion.Version)
	// The CEL environments are costly to build: one of each, shared by the
	// controllers and the validating webhook.
	// Only for the groups that are on (nil otherwise).
	var authnCEL authenticationcel.Compiler
	var authzCEL authorizationcel.Compiler
	if authnOn {
		authnCEL = authenticationcel.NewDefaultCompiler()
	}
	// What the authorization wiring the operator renders keeps from the
	// webhook: AccessPolicies that name it say so.
	authzExclusions, err := apiserverconfig.AuthorizationOptions{OperatorNamespace: o.Namespace, OperatorServiceAccount: OperatorServiceAccount}.Exclusions()
	if err != nil {
		return err
	}
	if authzOn {
		authzCEL = authorizationcel.NewDefaultCompiler()
	}

	if authnOn {
		engine := authn.NewEngine(nil)
		registry := authn.NewRegistry(engine)
		if err := authncontrollers.Setup(ctx, authncontrollers.Deps{
			Manager: mgr, Namespace: o.Namespace, Registry: registry, Compiler: authnCEL, Approvals: approvalKey,
		}); err != nil {
			return fmt.Errorf("setting up authentication controllers: %w", err)
		}
		authnSeen = operatorcontrollers.NewObserved()
		webhookServer.Register(authnwebhook.Path, guard(&authnwebhook.Webhook{Engine: engine, Recorder: rec, Observed: authnSeen.Mark}))
		kinds = append(kinds,
			opmetrics.Kind{Name: authn.KindStaticToken, Counts: func() (int, int) { return registry.Counts(authn.KindStaticToken) }},
			opmetrics.Kind{Name: authn.KindJWTAuthenticator, Counts: func() (int, int) { return registry.Counts(authn.KindJWTAuthenticator) }})
		phases = append(phases, opmetrics.Phase{Name: decision.PhaseAuthenticate, Generation: func() uint64 { return engine.Snapshot().Generation }})
		if err := mgr.AddReadyzCheck("authentication-snapshot", snapshotReady("authentication", engine.Ready)); err != nil {
			return err
		}
		log.Info("phase on", "phase", decision.PhaseAuthenticate, "path", authnwebhook.Path)
	} else {
		log.Info("phase off by --runtime-config", "group", authnv1alpha1.GroupVersion.String())
	}

	if authzOn {
		namespaces, err := nscache.New(ctx, mgr)
		if err != nil {
			return err
		}
		disc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
		if err != nil {
			return fmt.Errorf("discovery client: %w", err)
		}
		scopes := apiscopes.New(disc)
		if err := mgr.Add(scopes); err != nil {
			return err
		}
		engine := authz.NewEngine(namespaces, scopes)
		registry := authz.NewRegistry(engine)
		if err := authzcontrollers.Setup(authzcontrollers.Deps{Manager: mgr, Registry: registry, Compiler: authzCEL, Approvals: approvalKey, Exclusions: authzExclusions}); err != nil {
			return fmt.Errorf("setting up authorization controllers: %w", err)
		}
		authzSeen = operatorcontrollers.NewObserved()
		webhookServer.Register(authzwebhook.Path, guard(&authzwebhook.Webhook{Engine: engine, Recorder: rec, Observed: authzSeen.Mark}))
		kinds = append(kinds, opmetrics.Kind{Name: authz.KindAccessPolicy, Counts: func() (int, int) { return engine.Snapshot().Counts() }})
		phases = append(phases, opmetrics.Phase{Name: decision.PhaseAuthorize, Generation: func() uint64 { return engine.Snapshot().Generation }})
		if err := mgr.AddReadyzCheck("authorization-snapshot", snapshotReady("authorization", engine.Ready)); err != nil {
			return err
		}
		log.Info("phase on", "phase", decision.PhaseAuthorize, "path", authzwebhook.Path)
	} else {
		log.Info("phase off by --runtime-config", "group", authzv1alpha1.GroupVersion.String())
	}

	var admissionCfg *webhookconfig.Admission
	var admissionCEL *admissionengine.Compiler
	// One pending signal is enough: the reconciler reads the current rules
	// and CA.
	changes := make(chan event.GenericEvent, 1)
	if admissionOn {
		var err error
		if admissionCEL, err = admissionengine.NewCompiler(); err != nil {
			return fmt.Errorf("admission CEL environment: %w", err)
		}
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
		mutations, validations, exceptions := pair.Mutations, pair.Validations, pair.Exceptions
		mutEngine.UseTypeConverters(&admissionengine.BoundedTypeConverters{Source: schemas, Timeout: 500 * time.Millisecond})
		webhookServer.Register(admissionwebhook.MutatePath, guardAdmission(&admissionwebhook.Mutator{Engine: mutEngine, Recorder: rec}))
		webhookServer.Register(admissionwebhook.ValidatePath, guardAdmission(&admissionwebhook.Validator{Engine: valEngine, Recorder: rec}))
		kinds = append(kinds,
			opmetrics.Kind{Name: admissionengine.KindMutationPolicy, Counts: mutations.Counts},
			opmetrics.Kind{Name: admissionengine.KindValidationPolicy, Counts: validations.Counts},
			opmetrics.Kind{Name: admissionengine.KindPolicyException, Counts: exceptions.Counts})
		phases = append(phases,
			opmetrics.Phase{Name: decision.PhaseMutate, Generation: func() uint64 { return mutEngine.Snapshot().Generation }},
			opmetrics.Phase{Name: decision.PhaseValidate, Generation: func() uint64 { return valEngine.Snapshot().Generation }})
		if err := mgr.AddReadyzCheck("admission-snapshot", snapshotReady("admission", func() bool { return mutEngine.Ready() && valEngine.Ready() })); err != nil {
			return err
		}
		admissionCfg = &webhookconfig.Admission{
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
		}
		native, err := nativeExecution(mgr, *admissionCfg, o.RuntimeConfig.Enabled(operatorv1alpha1.GroupVersion.Group, operatorv1alpha1.GroupVersion.Version))
		if err != nil {
			return err
		}
		bundleOn := o.RuntimeConfig.Enabled(operatorv1alpha1.GroupVersion.Group, operatorv1alpha1.GroupVersion.Version)
		if err := admissioncontrollers.Setup(admissioncontrollers.Deps{
			Manager: mgr, Compiler: admissionCEL, Changes: changes, Mutations: mutations, Validations: validations,
			Exceptions: exceptions, Approvals: approvalKey, Params: params, Native: native,
			Audit: &admissioncontrollers.AuditDeps{
				Settings: auditSettings(mgr.GetClient(), admissionCfg.ExcludedNamespaces, bundleOn), Namespaces: namespaces, Params: params,
				Dynamic: dyn, Mapper: mgr.GetRESTMapper(), Ready: valEngine.Ready, Exceptions: valEngine, ParamChanges: params.Changes,
				Metrics: ctrlmetrics.Registry,
			},
		}); err != nil {
			return fmt.Errorf("setting up admission controllers: %w", err)
		}
		log.Info("phase on", "phase", decision.PhaseMutate+"+"+decision.PhaseValidate, "paths", []string{admissionwebhook.MutatePath, admissionwebhook.ValidatePath})
	} else {
		log.Info("phase off by --runtime-config", "group", admissionv1alpha1.GroupVersion.String())
	}

	// Our own kinds are validated at apply time by a webhook the operator
	// registers and keeps; only the groups that are on are in its rules.
	var ownRules []admissionregistrationv1.RuleWithOperations
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	if authnOn {
		ownRules = append(ownRules, admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{authnv1alpha1.GroupVersion.Group}, APIVersions: []string{authnv1alpha1.GroupVersion.Version}, Resources: []string{"jwtauthenticators", "statictokens"},
		}})
	}
	if authzOn {
		ownRules = append(ownRules, admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{authzv1alpha1.GroupVersion.Group}, APIVersions: []string{authzv1alpha1.GroupVersion.Version}, Resources: []string{"accesspolicies"},
		}})
	}
	if admissionOn {
		ownRules = append(ownRules, admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{admissionv1alpha1.GroupVersion.Group}, APIVersions: []string{admissionv1alpha1.GroupVersion.Version}, Resources: []string{"mutationpolicies", "validationpolicies", "policyexceptions"},
		}})
	}
	// The kinds that grant permissions or an identity are approved: their
	// author is checked for what they grant.
	var approvalRules []admissionregistrationv1.RuleWithOperations
	if authnOn {
		approvalRules = append(approvalRules, admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{authnv1alpha1.GroupVersion.Group}, APIVersions: []string{authnv1alpha1.GroupVersion.Version}, Resources: []string{"jwtauthenticators", "statictokens"},
		}})
	}
	if authzOn {
		approvalRules = append(approvalRules, admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{authzv1alpha1.GroupVersion.Group}, APIVersions: []string{authzv1alpha1.GroupVersion.Version}, Resources: []string{"accesspolicies"},
		}})
	}
	if admissionOn {
		// A PolicyException is as powerful as editing the policies it names.
		approvalRules = append(approvalRules, admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{admissionv1alpha1.GroupVersion.Group}, APIVersions: []string{admissionv1alpha1.GroupVersion.Version}, Resources: []string{"policyexceptions"},
		}})
	}
	decoder := ownkinds.NewDecoder(scheme)
	webhookServer.Register(ownkinds.Path, guardAdmission(admissionwebhook.Handler(&ownkinds.Validator{
		Decoder: decoder, AuthnCompiler: authnCEL, AuthzCompiler: authzCEL,
		AuthzExclusions: authzExclusions, AdmissionCompiler: admissionCEL, Key: approvalKey,
	})))
	if err := mgr.Add(&approval.KeyWatch{Client: mgr.GetClient(), Namespace: o.Namespace, Name: ApprovalKeySecret, Key: approvalKey}); err != nil {
		return err
	}
	webhookServer.Register(ownkinds.ApprovePath, guardAdmission(admissionwebhook.Handler(&ownkinds.Approver{
		Decoder: decoder, AuthnCompiler: authnCEL, AuthzCompiler: authzCEL, Admission: admissionOn, Client: mgr.GetClient(), Key: approvalKey,
	})))
	bundleOn := o.RuntimeConfig.Enabled(operatorv1alpha1.GroupVersion.Group, operatorv1alpha1.GroupVersion.Version)
	caFile := filepath.Join(o.CertDir, certs.CAFile)
	wc := &webhookconfig.Reconciler{
		Client: mgr.GetClient(),
		OwnKinds: webhookconfig.OwnKinds{Name: OwnKindsWebhookConfiguration, Path: ownkinds.Path, Rules: ownRules,
			ApprovalName: ApprovalWebhookConfiguration, ApprovalPath: ownkinds.ApprovePath, ApprovalRules: approvalRules},
		Admission: admissionCfg,
		Changes:   changes,
		Endpoint:  o.Endpoint,
		CABundle:  func() ([]byte, error) { return os.ReadFile(caFile) },
	}
	if bundleOn {
		wc.Overrides, wc.Watch = operatorcontrollers.Overrides(mgr.GetClient()), &operatorv1alpha1.WebhookBundle{}
	}
	if err := wc.SetupWithManager(mgr); err != nil {
		return err
	}
	if o.CertSecret != "" {
		if err := (&operatorcontrollers.CertificateSync{
			Client: mgr.GetClient(), Namespace: o.Namespace, SecretName: o.CertSecret, Dir: o.CertDir, Changed: changes,
		}).SetupWithManager(mgr); err != nil {
			return err
		}
		wiring := &apiserverconfig.Options{URL: o.Endpoint.BaseURL(), ConfigDir: WiringConfigDir}
		if authzOn {
			wiring.Authorization = &apiserverconfig.AuthorizationOptions{OperatorNamespace: o.Namespace, OperatorServiceAccount: OperatorServiceAccount}
		}
		if err := (&operatorcontrollers.CertificateReconciler{
			Client: mgr.GetClient(), Namespace: o.Namespace, SecretName: o.CertSecret, Hosts: o.CertHosts,
			ClientName: APIServerClientName, Wiring: wiring, WiringSecret: WiringSecret,
		}).SetupWithManager(mgr); err != nil {
			return err
		}
	}
	if bundleOn {
		var crdNames []string
		for _, crd := range installed {
			crdNames = append(crdNames, crd.Name)
		}
		wb := &operatorcontrollers.Reconciler{
			Client: mgr.GetClient(), CertFile: filepath.Join(o.CertDir, certs.CertFile), CRDs: crdNames,
			OwnKindsConfiguration: OwnKindsWebhookConfiguration,
			MutatingName:          MutatingWebhookConfiguration, ValidatingName: ValidatingWebhookConfiguration,
			Authenticate: authnSeen, Authorize: authzSeen, Kinds: kinds,
		}
		if admissionCfg != nil {
			wb.AdmissionRules = admissionCfg.Rules
		}
		if err := wb.SetupWithManager(mgr); err != nil {
			return err
		}
	}

	// Several operators in one process (tests) share the first one's
	// collector; in a pod there is one.
	if err := ctrlmetrics.Registry.Register(opmetrics.New(kinds, phases, filepath.Join(o.CertDir, certs.CertFile))); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}

	if o.Started != nil {
		started := o.Started
		if err := mgr.Add(runnableFunc(func(ctx context.Context) error { close(started); <-ctx.Done(); return nil })); err != nil {
			return err
		}
	}
	log.Info("starting", "namespace", o.Namespace, "webhookPort", port)
	return mgr.Start(ctx)
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
