package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

const (
	// DefaultStartTimeout bounds how long etcd, then kube-apiserver, may take
	// to become healthy. kube-apiserver needs a few seconds on an idle
	// machine but several times that on a loaded 2-core one (it runs its
	// post-start hooks and bootstraps RBAC before /healthz is ok); envtest's
	// 20s default is too tight there.
	DefaultStartTimeout = 90 * time.Second
	// DefaultStopTimeout bounds a graceful stop before the process is killed
	// (envtest's default).
	DefaultStopTimeout = 20 * time.Second

	// startAttempts is how often Start tries with fresh ports. The ports are
	// probed free and then released for the processes to bind, so another
	// process can take one in between; a retry with new ports fixes that.
	startAttempts = 3

	// readyTimeout bounds the wait, after /healthz is ok, for the "default"
	// namespace, which the API server creates in a post-start controller;
	// clients that start right away expect it.
	readyTimeout = 30 * time.Second
	// readyPollInterval is how often that wait asks.
	readyPollInterval = 100 * time.Millisecond

	// adminQPS and adminBurst lift client-go's defaults (5/10) for the
	// admin client, as envtest does: tests and the dev job create many
	// objects quickly against a private API server.
	adminQPS   = 1000
	adminBurst = 2000

	// loopback is the only address anything listens on.
	loopback = "127.0.0.1"

	// serviceAccountIssuer is fixed (envtest uses the API server's URL, whose
	// port changes at every start) so that service-account tokens issued
	// before a restart on the same StateDir stay valid. It is the issuer
	// kubeadm clusters use.
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

	// Subdirectories of the state directory.
	etcdSubdir   = "etcd"
	certsSubdir  = "apiserver-certs"
	wiringSubdir = "wiring"

	// adminKubeconfigFile is where Kubectl's default (admin) kubeconfig is
	// written, in the cert dir because it holds a client key.
	adminKubeconfigFile = "admin.kubeconfig"

	// stateDirMode keeps the state (keys, etcd data) private.
	stateDirMode = 0o700
)

// Config says what to start.
type Config struct {
	// AssetsDir holds kube-apiserver, kube-controller-manager, etcd and
	// kubectl. Empty means AssetsDir().
	AssetsDir string

	// StateDir holds etcd's data (StateDir/etcd), the API server's
	// certificates and keys (StateDir/apiserver-certs) and the rendered
	// wiring files (StateDir/wiring). Empty means a temporary directory that
	// Stop removes; otherwise the state persists there and a later Start on
	// the same directory sees the same objects.
	StateDir string

	// Wiring says how the API server reaches the Portcullis webhook server;
	// it is rendered with apiserverconfig.Write into StateDir/wiring and
	// given to kube-apiserver as flags. Its ConfigDir is ignored. With
	// FailurePolicyDeny the webhook server must be up before Start: the
	// start's anonymous /healthz probe goes through the authorizer chain.
	Wiring apiserverconfig.Options

	// ExtraAPIServerFlags are further kube-apiserver flags, each
	// "--name=value" (or "--name"), e.g. --audit-log-path or
	// --runtime-config. A name given here replaces envtest's default for it;
	// a name given several times is passed several times. Flags the control
	// plane owns (authorization, token webhook, serving, etcd) are refused.
	ExtraAPIServerFlags []string

	// Builtins, when set, wires no webhook at all: tokens from a token
	// file, authorization Node,RBAC (Wiring is ignored). The configuration
	// Portcullis is compared with (make bench-chain).
	Builtins *Builtins

	// WithoutControllerManager starts no kube-controller-manager: no
	// namespace deletion, garbage collection, ServiceAccounts, aggregated
	// ClusterRoles or workload controllers. For tests that start many
	// control planes and need none of them; the default (and `make run`)
	// runs it.
	WithoutControllerManager bool

	// Out and Err receive the processes' stdout and stderr; nil discards.
	Out, Err io.Writer

	// StartTimeout bounds each process's start; zero means
	// DefaultStartTimeout. A deadline on Start's context shortens it.
	StartTimeout time.Duration
}

// Builtins is the API server's own authentication and authorization.
type Builtins struct {
	// TokenAuthFile is the --token-auth-file: "token,user,uid,groups".
	TokenAuthFile string
}

// ControlPlane is a running etcd, kube-apiserver and (unless
// Config.WithoutControllerManager) kube-controller-manager.
type ControlPlane struct {
	plane     *envtest.ControlPlane
	cm        *controllerManager
	admin     *rest.Config
	bins      binaries
	stateDir  string
	certDir   string
	removeDir bool
	wiring    *apiserverconfig.Files
	servingCA []byte

	stopOnce sync.Once
	stopErr  error

	// kubeconfigMu guards adminKubeconfigPath, Kubectl's default
	// kubeconfig, written on first use.
	kubeconfigMu        sync.Mutex
	adminKubeconfigPath string
}

// Start starts etcd and kube-apiserver, waits until the API server is
// healthy and has its "default" namespace, provisions the admin user, then
// starts kube-controller-manager and waits until it is healthy and leads.
// ctx bounds the start only: the processes run until Stop.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, retErr error) {
	assets := cfg.AssetsDir
	if assets == "" {
		var err error
		if assets, err = AssetsDir(); err != nil {
			return nil, err
		}
	}
	bins, err := findBinaries(assets)
	if err != nil {
		return nil, err
	}
	extra, err := parseExtraFlags(cfg.ExtraAPIServerFlags)
	if err != nil {
		return nil, err
	}

	c := &ControlPlane{bins: bins}
	if cfg.StateDir == "" {
		if c.stateDir, err = os.MkdirTemp("", "portcullis-control-plane-"); err != nil {
			return nil, err
		}
		c.removeDir = true
	} else {
		if c.stateDir, err = filepath.Abs(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	defer func() {
		if retErr != nil && c.removeDir {
			_ = os.RemoveAll(c.stateDir)
		}
	}()

	// The wiring is written first: it validates the options before any
	// other state is created.
	wiring := cfg.Wiring
	wiring.ConfigDir = "" // the API server reads the files where they are written
	if cfg.Builtins == nil {
		if c.wiring, err = apiserverconfig.Write(filepath.Join(c.stateDir, wiringSubdir), wiring); err != nil {
			return nil, fmt.Errorf("API server wiring: %w", err)
		}
	}
	etcdDir := filepath.Join(c.stateDir, etcdSubdir)
	c.certDir = filepath.Join(c.stateDir, certsSubdir)
	for _, d := range []string{etcdDir, c.certDir} {
		if err := os.MkdirAll(d, stateDirMode); err != nil {
			return nil, err
		}
	}
	var wiringFlags []flag
	var wiringArgs []string
	if c.wiring != nil {
		wiringArgs = c.wiring.APIServerFlags()
	} else {
		wiringArgs = []string{"--authorization-mode=Node,RBAC", "--token-auth-file=" + cfg.Builtins.TokenAuthFile}
	}
	for _, arg := range wiringArgs {
		f, err := parseFlag(arg)
		if err != nil {
			return nil, err
		}
		wiringFlags = append(wiringFlags, f)
	}

	servingCA, err := ensureCerts(c.certDir, time.Now())
	if err != nil {
		return nil, err
	}
	c.servingCA = servingCA

	startTimeout := cfg.StartTimeout
	if startTimeout <= 0 {
		startTimeout = DefaultStartTimeout
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < startTimeout {
		startTimeout = time.Until(deadline)
	}

	var errs []error
	for attempt := 1; attempt <= startAttempts && c.plane == nil; attempt++ {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		plane, err := newPlane(c, cfg, etcdDir, servingCA, startTimeout, wiringFlags, extra)
		if err == nil {
			err = plane.Start()
			if err != nil {
				_ = plane.Stop()
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
			continue
		}
		c.plane = plane
	}
	removeEnvtestKubeconfigs(c.certDir)
	if c.plane == nil {
		return nil, fmt.Errorf("start control plane (state in %s): %w", c.stateDir, errors.Join(errs...))
	}
	defer func() {
		if retErr != nil {
			_ = c.Stop()
		}
	}()

	admin, err := c.plane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: adminQPS, Burst: adminBurst})
	if err != nil {
		return nil, fmt.Errorf("provision admin user: %w", err)
	}
	c.admin = admin.Config()
	if err := waitForDefaultNamespace(ctx, c.admin); err != nil {
		return nil, err
	}
	if !cfg.WithoutControllerManager {
		if c.cm, err = c.startControllerManager(ctx, cfg, servingCA, startTimeout); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// newPlane configures (without starting) an envtest control plane on fresh
// loopback ports.
func newPlane(c *ControlPlane, cfg Config, etcdDir string, servingCA []byte, startTimeout time.Duration, wiringFlags, extra []flag) (*envtest.ControlPlane, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]

	etcd := &envtest.Etcd{
		Path:         c.bins.etcd,
		DataDir:      etcdDir,
		URL:          &url.URL{Scheme: "http", Host: net.JoinHostPort(loopback, strconv.Itoa(etcdPort))},
		StartTimeout: startTimeout,
		StopTimeout:  DefaultStopTimeout,
		Out:          cfg.Out,
		Err:          cfg.Err,
	}
	// envtest picks the peer port on "localhost"; keep it on loopback too.
	etcd.Configure().Set("listen-peer-urls", "http://"+net.JoinHostPort(loopback, strconv.Itoa(peerPort)))
	if !c.removeDir {
		// envtest turns fsync off for speed; persisted state must survive
		// a crash.
		etcd.Configure().Disable("unsafe-no-fsync")
	}

	api := &envtest.APIServer{
		Path:    c.bins.apiServer,
		CertDir: c.certDir,
		SecureServing: envtest.SecureServing{
			ListenAddr: envtest.ListenAddr{Address: loopback, Port: strconv.Itoa(apiPort)},
			// envtest only records the CA when it mints the certificates;
			// ours are already in CertDir.
			CA: servingCA,
		},
		StartTimeout: startTimeout,
		StopTimeout:  DefaultStopTimeout,
		Out:          cfg.Out,
		Err:          cfg.Err,
	}
	args := api.Configure()
	// kube-apiserver refuses --authorization-mode with --authorization-config;
	// envtest defaults it to RBAC, which the AuthorizationConfiguration lists.
	args.Disable("authorization-mode")
	args.Set("service-account-issuer", serviceAccountIssuer)
	for _, f := range wiringFlags {
		args.Set(f.name, f.value)
	}
	for _, f := range extra {
		if f.hasValue {
			args.AppendNoDefaults(f.name, f.value)
		} else {
			args.Enable(f.name)
		}
	}

	return &envtest.ControlPlane{Etcd: etcd, APIServer: api, KubectlPath: c.bins.kubectl}, nil
}

// freePorts returns n distinct free TCP ports on the loopback address. All
// listeners are held until every port is chosen so that none repeats.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port on %s: %w", loopback, err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitForDefaultNamespace waits until the API server has created the
// "default" namespace.
func waitForDefaultNamespace(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, readyPollInterval, readyTimeout, true, func(ctx context.Context) (bool, error) {
		_, lastErr = cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
		return lastErr == nil, nil
	})
	if err != nil {
		return fmt.Errorf("the API server is healthy but has no %q namespace after %s: %w (last error: %v)", metav1.NamespaceDefault, readyTimeout, err, lastErr)
	}
	return nil
}

// removeEnvtestKubeconfigs removes the "*.kubecfg" files envtest writes into
// the cert dir for its legacy default user at every start; we never use
// them, and in a persisted StateDir they would pile up.
func removeEnvtestKubeconfigs(certDir string) {
	matches, _ := filepath.Glob(filepath.Join(certDir, "*.kubecfg"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

// Stop stops kube-controller-manager, then kube-apiserver, then etcd, and
// removes the state directory if it was temporary. It is safe to call more
// than once.
func (c *ControlPlane) Stop() error {
	c.stopOnce.Do(func() {
		c.stopErr = errors.Join(c.cm.stop(DefaultStopTimeout), c.plane.Stop())
		removeEnvtestKubeconfigs(c.certDir)
		// The admin's and the controller manager's kubeconfigs name a
		// client CA that dies with this run; a persisted StateDir should
		// not keep stale ones around.
		_ = os.Remove(filepath.Join(c.certDir, adminKubeconfigFile))
		_ = os.Remove(filepath.Join(c.certDir, controllerManagerKubeconfigFile))
		if c.removeDir {
			if err := os.RemoveAll(c.stateDir); err != nil {
				c.stopErr = errors.Join(c.stopErr, err)
			}
		}
	})
	return c.stopErr
}

// APIServerURL is the API server's base URL, https://127.0.0.1:PORT.
func (c *ControlPlane) APIServerURL() string {
	return c.plane.APIServer.SecureServing.URL("https", "").String()
}

// AdminConfig returns a copy of the admin's client configuration: a
// system:masters client certificate, which skips the token webhook and every
// authorizer.
func (c *ControlPlane) AdminConfig() *rest.Config {
	return rest.CopyConfig(c.admin)
}

// TokenConfig returns a client configuration for a bearer-token user: the
// API server's URL and CA, the token, and no client certificate, so every
// request goes through the token webhook and the authorizer chain.
func (c *ControlPlane) TokenConfig(token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(c.admin)
	cfg.BearerToken = token
	return cfg
}

// StateDir is the directory holding etcd's data, the certificates and the
// wiring (temporary unless Config.StateDir was set).
func (c *ControlPlane) StateDir() string {
	return c.stateDir
}

// WiringFiles are the rendered API-server wiring files in use.
func (c *ControlPlane) WiringFiles() *apiserverconfig.Files {
	return c.wiring
}
