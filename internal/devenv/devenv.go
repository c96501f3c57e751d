package devenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/controllers/webhookconfig"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/certs"
	"github.com/portcullis-io/portcullis/internal/controlplane"
)

// DefaultTokenCacheTTL is the API server's token cache TTL locally: short,
// so that a changed or deleted token is seen within seconds while trying
// things out. Clusters keep the API server's 2m default.
const DefaultTokenCacheTTL = 5 * time.Second

// DefaultAuthorizationCacheTTL is the API server's cache of authorization
// answers locally: short, so a policy change shows within seconds. Clusters
// keep 5m allowed / 30s denied.
const DefaultAuthorizationCacheTTL = 5 * time.Second

// auditPolicy records every request at Metadata level: enough to see the
// audit annotations admission webhooks add.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
`

// CertSecret keeps the webhook certificate locally as in a cluster, seeded
// with the CA the local API server was wired with.
const CertSecret = "portcullis-webhook-certs"

// MetricsReader is the ServiceAccount, in the operator's namespace, that
// may read /metrics locally: the endpoint wants a bearer token allowed to
// get the non-resource URL /metrics, as a scraper's in a cluster
// (config/rbac's metrics-reader).
const MetricsReader = "metrics-reader"

// ReadyTimeout bounds the wait for the operator to become ready.
const ReadyTimeout = 2 * time.Minute

// Options say what to start.
type Options struct {
	// StateDir keeps the control plane's state and the webhook
	// certificates; empty means a temporary directory removed at Stop.
	StateDir string
	// AssetsDir holds the control-plane binaries; empty means
	// controlplane.AssetsDir().
	AssetsDir string
	// Namespace is the operator's namespace; app.DefaultNamespace when empty.
	Namespace string
	// TokenCacheTTL for the API server's token webhook; DefaultTokenCacheTTL when zero.
	TokenCacheTTL time.Duration
	// AuthorizationCacheTTL is the API server's cache of authorization
	// webhook answers, allowed and denied alike; DefaultAuthorizationCacheTTL
	// when zero. AuthorizedTTL and UnauthorizedTTL, when set, set each on
	// its own, as clusters do (5m and 30s there); negative disables it.
	AuthorizationCacheTTL          time.Duration
	AuthorizedTTL, UnauthorizedTTL time.Duration
	// RuntimeConfig is the operator's --runtime-config.
	RuntimeConfig map[string]string
	// AuditLog turns on the API server's audit log (level Metadata for
	// every request, so admission audit annotations are recorded) at
	// Env.AuditLogPath.
	AuditLog bool
	// ExtraAPIServerFlags go to kube-apiserver as they are.
	ExtraAPIServerFlags []string
	// WithoutControllerManager starts no kube-controller-manager (see
	// controlplane.Config); for tests of the operator alone.
	WithoutControllerManager bool
	// Out receives the control plane's process output; nil discards it.
	Out io.Writer
	// Process, when set, runs the operator as separate processes rather
	// than in this one (Env.Processes).
	Process *ProcessOptions
	// DecisionLog receives the in-process operator's decision lines
	// (app.Options.DecisionLog): decision.Loggers' unsampled logger, as
	// the operator's command builds it. Unset, they go to ctrl.Log, whose
	// sampler drops most lines under load.
	DecisionLog logr.Logger
	// AuthorizationFailurePolicy and AuthorizationTimeout are the rendered
	// authorization webhook's; NoOpinion and 3s when empty.
	AuthorizationFailurePolicy apiserverconfig.FailurePolicy
	AuthorizationTimeout       time.Duration
}

// Env is a running control plane and operator.
type Env struct {
	ControlPlane *controlplane.ControlPlane
	// Client is an admin client with the operator's scheme.
	Client client.Client
	// Namespace is the operator's namespace.
	Namespace string
	// WebhookURL is where the API server reaches the operator: a front
	// that, like a Service, routes to any running replica.
	WebhookURL string
	// ProbeAddr serves /healthz and /readyz; MetricsAddr serves /metrics.
	ProbeAddr, MetricsAddr string
	// AuditLogPath is the API server's audit log, when Options.AuditLog.
	AuditLogPath string
	// APIServerClient is the client certificate the API server presents to
	// /authenticate and /authorize; a test that calls them directly, as
	// the API server would, uses it.
	APIServerClient tls.Certificate

	// Processes are the operator processes, when Options.Process.
	Processes []*Process

	tmpDir  string
	certDir string
	hosts   []string
	rc      app.RuntimeConfig
	// decisionLog is Options.DecisionLog.
	decisionLog logr.Logger
	primary     *Operator
	front       *front
	stopOnce    bool
}

// Operator is one in-process operator replica.
type Operator struct {
	// WebhookURL, ProbeAddr and MetricsAddr are where it serves.
	WebhookURL, ProbeAddr, MetricsAddr string

	cancel context.CancelFunc
	done   chan error
	// front routes the API server's webhook calls to this replica, until
	// it stops.
	front       *front
	webhookAddr string
}

// startOperator starts a replica on the given ports, sharing the
// control plane, the webhook certificate directory and the leader lease
// with every other replica, and waits until it runs.
func (e *Env) startOperator(ctx context.Context, webhookPort, probePort, metricsPort int) (*Operator, error) {
	op := &Operator{
		WebhookURL:  "https://127.0.0.1:" + strconv.Itoa(webhookPort),
		ProbeAddr:   "127.0.0.1:" + strconv.Itoa(probePort),
		MetricsAddr: "127.0.0.1:" + strconv.Itoa(metricsPort),
		done:        make(chan error, 1),
	}
	opCtx, cancel := context.WithCancel(context.Background())
	op.cancel = cancel
	started := make(chan struct{})
	go func() {
		op.done <- app.Run(opCtx, app.Options{
			RESTConfig: e.ControlPlane.AdminConfig(), Namespace: e.Namespace, DecisionLog: e.decisionLog,
			WebhookHost: "127.0.0.1", WebhookPort: webhookPort,
			CertDir: e.certDir, CertHosts: e.hosts, CertSecret: CertSecret,
			MetricsAddr: op.MetricsAddr, ProbeAddr: op.ProbeAddr,
			LeaderElection: true, RuntimeConfig: e.rc, Started: started,
			// In process, a stop is the end of a test or of make run: no
			// connections to drain (the fault suite's processes drain).
			ShutdownDrain:                -1,
			AuthenticateCallers:          true,
			AuthenticateAdmissionCallers: true,
			SkipControllerNameValidation: true,
			// The API server reaches every replica through the front;
			// every replica renders the same configurations.
			Endpoint: webhookconfig.Endpoint{URL: e.WebhookURL},
		})
	}()
	select {
	case <-started:
		op.front, op.webhookAddr = e.front, "127.0.0.1:"+strconv.Itoa(webhookPort)
		op.front.add(op.webhookAddr)
		return op, nil
	case err := <-op.done:
		op.done <- err
		return nil, fmt.Errorf("operator stopped: %w", err)
	case <-ctx.Done():
		op.Stop()
		return nil, ctx.Err()
	}
}

// StartReplica starts another operator replica on free ports and waits
// until it is ready: the way to test high availability in one process.
func (e *Env) StartReplica(ctx context.Context) (*Operator, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	op, err := e.startOperator(ctx, ports[0], ports[1], ports[2])
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+op.ProbeAddr+"/readyz", ReadyTimeout); err != nil {
		op.Stop()
		return nil, err
	}
	return op, nil
}

// Primary is the replica the API server is wired to.
func (e *Env) Primary() *Operator { return e.primary }

// Stop stops the replica (releasing the lease if it leads) and waits for it.
func (op *Operator) Stop() error {
	if op == nil || op.cancel == nil {
		return nil
	}
	if op.front != nil {
		op.front.remove(op.webhookAddr)
	}
	op.cancel()
	select {
	case err, ok := <-op.done:
		if ok && err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		close(op.done)
		op.cancel = nil
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("operator did not stop within 30s")
	}
}

// Start starts the control plane, then the operator, and waits until the
// operator is ready.
func Start(ctx context.Context, o Options) (_ *Env, retErr error) {
	e := &Env{Namespace: o.Namespace}
	if e.Namespace == "" {
		e.Namespace = app.DefaultNamespace
	}
	state := o.StateDir
	if state == "" {
		d, err := os.MkdirTemp("", "portcullis-dev-")
		if err != nil {
			return nil, err
		}
		e.tmpDir, state = d, d
	}
	defer func() {
		if retErr != nil {
			_ = e.Stop()
		}
	}()
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	rc, err := app.ParseRuntimeConfig(o.RuntimeConfig)
	if err != nil {
		return nil, err
	}
	// ports[0] is the front (the webhook Service), the others the
	// primary replica's webhook, probe and metrics ports.
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	if e.front, err = newFront("127.0.0.1:" + strconv.Itoa(ports[0])); err != nil {
		return nil, fmt.Errorf("webhook front: %w", err)
	}
	certDir := filepath.Join(state, "webhook-certs")
	hosts := []string{"127.0.0.1", "localhost"}
	caPEM, err := certs.Ensure(certDir, hosts, time.Now())
	if err != nil {
		return nil, fmt.Errorf("webhook certificates: %w", err)
	}
	e.WebhookURL = "https://127.0.0.1:" + strconv.Itoa(ports[0])
	ttl := o.TokenCacheTTL
	if ttl == 0 {
		ttl = DefaultTokenCacheTTL
	}
	extra := append([]string(nil), o.ExtraAPIServerFlags...)
	if o.AuditLog {
		policy := filepath.Join(state, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return nil, err
		}
		e.AuditLogPath = filepath.Join(state, "audit.log")
		extra = append(extra, "--audit-policy-file="+policy, "--audit-log-path="+e.AuditLogPath, "--audit-log-format=json")
	}
	// The API server's client certificate for /authenticate and
	// /authorize, from the webhook CA, as the wiring gives it in a cluster.
	b := certs.ReadDir(certDir)
	clientCert, clientKey, err := certs.IssueClient(b.CA, b.CAKey, app.APIServerClientName, time.Now())
	if err != nil {
		return nil, fmt.Errorf("API server client certificate: %w", err)
	}
	if e.APIServerClient, err = tls.X509KeyPair(clientCert, clientKey); err != nil {
		return nil, err
	}
	// Admission calls present it too, through the rendered
	// AdmissionConfiguration, as on a control plane the admin configures.
	wiring := apiserverconfig.Options{URL: e.WebhookURL, CABundle: caPEM, TokenCacheTTL: ttl, ClientCertificate: clientCert, ClientKey: clientKey, AdmissionCallers: true}
	if rc.Enabled(authzv1alpha1.GroupVersion.Group, authzv1alpha1.GroupVersion.Version) {
		authzTTL := o.AuthorizationCacheTTL
		if authzTTL == 0 {
			authzTTL = DefaultAuthorizationCacheTTL
		}
		allowedTTL, deniedTTL := authzTTL, authzTTL
		if o.AuthorizedTTL != 0 {
			allowedTTL = o.AuthorizedTTL
		}
		if o.UnauthorizedTTL != 0 {
			deniedTTL = o.UnauthorizedTTL
		}
		wiring.Authorization = &apiserverconfig.AuthorizationOptions{
			AuthorizedTTL: allowedTTL, UnauthorizedTTL: deniedTTL,
			FailurePolicy: apiserverconfig.FailurePolicyNoOpinion, OperatorNamespace: e.Namespace,
			Timeout: o.AuthorizationTimeout,
		}
		if o.AuthorizationFailurePolicy != "" {
			wiring.Authorization.FailurePolicy = o.AuthorizationFailurePolicy
		}
	}
	cp, err := controlplane.Start(ctx, controlplane.Config{
		AssetsDir:                o.AssetsDir,
		StateDir:                 filepath.Join(state, "control-plane"),
		Wiring:                   wiring,
		ExtraAPIServerFlags:      extra,
		WithoutControllerManager: o.WithoutControllerManager,
		Out:                      o.Out, Err: o.Out,
	})
	if err != nil {
		return nil, err
	}
	e.ControlPlane = cp
	scheme, err := app.NewScheme()
	if err != nil {
		return nil, err
	}
	if e.Client, err = client.New(cp.AdminConfig(), client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.Namespace}}
	if err := e.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", e.Namespace, err)
	}

	if err := e.ensureMetricsReader(ctx); err != nil {
		return nil, err
	}
	e.certDir, e.hosts, e.rc, e.decisionLog = certDir, hosts, rc, o.DecisionLog
	if o.Process != nil {
		if err := e.startProcesses(ctx, o.Process, state); err != nil {
			return nil, err
		}
	} else {
		op, err := e.startOperator(ctx, ports[1], ports[2], ports[3])
		if err != nil {
			return nil, err
		}
		e.primary = op
		e.ProbeAddr, e.MetricsAddr = op.ProbeAddr, op.MetricsAddr
		if err := e.WaitReady(ctx); err != nil {
			return nil, err
		}
	}
	// The leader registers the webhook that validates our own kinds just
	// after start; wait for it, so that what is applied next is validated.
	anyOn := false
	for _, on := range rc {
		anyOn = anyOn || on
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, ReadyTimeout, true, func(ctx context.Context) (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKey{Name: app.OwnKindsWebhookConfiguration}, &admissionregistrationv1.ValidatingWebhookConfiguration{})
		return err == nil || !anyOn, nil
	})
	if err != nil {
		return nil, fmt.Errorf("the operator did not register %s: %w", app.OwnKindsWebhookConfiguration, err)
	}
	return e, nil
}

// WaitReady waits until the operator's /readyz passes.
func (e *Env) WaitReady(ctx context.Context) error {
	return waitHTTP(ctx, "http://"+e.ProbeAddr+"/readyz", ReadyTimeout)
}

// Stop stops the operator, then the control plane, and removes temporary state.
func (e *Env) Stop() error {
	if e.stopOnce {
		return nil
	}
	e.stopOnce = true
	var errs []error
	errs = append(errs, e.primary.Stop())
	for _, p := range e.Processes {
		errs = append(errs, p.Stop())
	}
	if e.front != nil {
		_ = e.front.close()
	}
	if e.ControlPlane != nil {
		errs = append(errs, e.ControlPlane.Stop())
	}
	if e.tmpDir != "" {
		errs = append(errs, os.RemoveAll(e.tmpDir))
	}
	return errors.Join(errs...)
}

// ApplyDir server-side applies every YAML document of every .yaml file in
// dir (kustomization.yaml excepted), in file-name order, the namespaces
// of all files first, as kubectl apply -k orders them.
func (e *Env) ApplyDir(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, ent := range entries {
		n := ent.Name()
		if !ent.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) && n != "kustomization.yaml" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, namespaces := range []bool{true, false} {
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return err
			}
			if err := e.apply(ctx, b, func(u *unstructured.Unstructured) bool { return (u.GetKind() == "Namespace") == namespaces }); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
	}
	return nil
}

// Apply server-side applies a multi-document YAML.
func (e *Env) Apply(ctx context.Context, manifest []byte) error {
	return e.apply(ctx, manifest, func(*unstructured.Unstructured) bool { return true })
}

// apply server-side applies the documents of manifest that pick picks.
func (e *Env) apply(ctx context.Context, manifest []byte, pick func(*unstructured.Unstructured) bool) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(u.Object) == 0 || !pick(&u) {
			continue
		}
		if u.GetNamespace() == "" && u.GetKind() == "Secret" {
			u.SetNamespace(e.Namespace)
		}
		if err := e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(&u), client.FieldOwner("portcullis-dev"), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// StaticToken waits until the StaticToken name is Ready and returns the
// token its Secret holds.
func (e *Env) StaticToken(ctx context.Context, name string, timeout time.Duration) (string, error) {
	var token string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var st authnv1alpha1.StaticToken
		if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &st); err != nil {
			return false, nil
		}
		ready := false
		for _, c := range st.Status.Conditions {
			ready = ready || (c.Type == authnv1alpha1.ConditionReady && c.Status == metav1.ConditionTrue && c.ObservedGeneration == st.Generation)
		}
		if !ready {
			return false, nil
		}
		var s corev1.Secret
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: st.Spec.SecretRef.Name}, &s); err != nil {
			return false, nil
		}
		key := st.Spec.SecretRef.Key
		if key == "" {
			key = "token"
		}
		token = strings.TrimSpace(string(s.Data[key]))
		return token != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("StaticToken %s did not become ready: %w", name, err)
	}
	return token, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// ensureMetricsReader creates the MetricsReader ServiceAccount and lets it
// get /metrics, as a cluster admin binds config/rbac's metrics-reader to a
// scraper.
func (e *Env) ensureMetricsReader(ctx context.Context) error {
	name := "portcullis-dev-" + MetricsReader
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: MetricsReader}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: e.Namespace, Name: MetricsReader}}},
	}
	for _, o := range objs {
		if err := e.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("metrics reader: %w", err)
		}
	}
	return nil
}

// MetricsToken returns a short-lived token of the MetricsReader
// ServiceAccount, for reading /metrics.
func (e *Env) MetricsToken(ctx context.Context) (string, error) {
	tr := &authenticationv1.TokenRequest{}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: MetricsReader}}
	if err := e.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", e.Namespace, MetricsReader, err)
	}
	return tr.Status.Token, nil
}

// CertDir holds the webhook CA and serving certificate (certs.DefaultLayout).
func (e *Env) CertDir() string { return e.certDir }

// CutWebhookConnections closes every connection the API server holds to
// the webhooks, and returns how many it closed. The API server keeps its
// connections alive, so without this what it sees after a change of the
// serving certificate is the handshake it made before; its next calls
// dial again and verify the certificate served now. A call in flight is
// cut too: cut when the requests under test are between calls.
func (e *Env) CutWebhookConnections() int { return e.front.cut() }

// ServeWebhooksWith has the API server's webhook calls served by h instead
// of the operator's replicas, over TLS with the operator's certificate, so
// that the wiring stays exactly as it is: a no-op server to compare with,
// or one that injects faults. stop puts the replicas back.
func (e *Env) ServeWebhooksWith(h http.Handler) (stop func() error, err error) {
	b := certs.ReadDir(e.certDir)
	cert, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	saved := e.front.route([]string{l.Addr().String()})
	return func() error {
		e.front.route(saved)
		return srv.Close()
	}, nil
}
