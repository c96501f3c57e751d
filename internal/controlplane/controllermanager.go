package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portcullis-io/portcullis/internal/certs"
)

const (
	// ControllerManagerUser is the controller manager's own identity, the
	// common name of its client certificate, as kubeadm issues it. RBAC's
	// bootstrap policy binds it to the system:kube-controller-manager
	// ClusterRole (leases, service accounts and their tokens) and lets it
	// read the authentication ConfigMap in kube-system.
	ControllerManagerUser = "system:kube-controller-manager"

	// controllerManagerLease is the Lease in kube-system the controller
	// manager's leader election holds (its --leader-elect-resource-name).
	controllerManagerLease = "kube-controller-manager"

	// Files in the cert dir: the controller manager's kubeconfig (a client
	// key, rewritten at every start because envtest's client CA is new at
	// every start) and its serving certificate, issued by the serving CA so
	// that its health check verifies TLS like every other connection here.
	controllerManagerKubeconfigFile = "kube-controller-manager.kubeconfig"
	controllerManagerCertFile       = "kube-controller-manager.crt"
	controllerManagerKeyFile        = "kube-controller-manager.key"
	// clientCAFile is where envtest writes the CA of its client
	// certificates (the API server's --client-ca-file).
	clientCAFile = "client-cert-auth-ca.crt"

	// healthPollInterval is how often the start asks the controller
	// manager's /healthz, then its Lease.
	healthPollInterval = 100 * time.Millisecond
)

// controllerManagerHosts are the names in its serving certificate: it
// listens on loopback only.
var controllerManagerHosts = []string{"127.0.0.1", "localhost"}

// controllerManagerLayout is where its serving certificate lives in the
// cert dir, beside the API server's, under the same CA.
var controllerManagerLayout = certs.Layout{CA: servingCAFile, CAKey: servingCAKeyFile, Cert: controllerManagerCertFile, Key: controllerManagerKeyFile}

// Controllers are the kube-controller-manager controllers the control plane
// runs: those that do their work without nodes. Without a kubelet or a
// scheduler pods stay Pending, so node, volume-attachment, taint and
// bootstrap-token controllers have nothing to do, and the CSR signer has no
// cluster signing key here (envtest's client CA lives only in memory).
var Controllers = []string{
	"serviceaccount-token-controller", // token Secrets, signed with the service-account key
	"serviceaccount-controller",       // the "default" ServiceAccount of every namespace
	"root-ca-certificate-publisher-controller",
	"namespace-controller",         // empties and removes a deleted namespace
	"garbage-collector-controller", // owner references: a deleted Deployment's ReplicaSets and pods
	"clusterrole-aggregation-controller",
	"deployment-controller",
	"replicaset-controller",
	"replicationcontroller-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"ttl-after-finished-controller",
	"disruption-controller",
	"endpoints-controller",
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"resourcequota-controller",
	"pod-garbage-collector-controller",
	"persistentvolumeclaim-protection-controller",
	"persistentvolume-protection-controller",
	"legacy-serviceaccount-token-cleaner-controller",
	"validatingadmissionpolicy-status-controller",
	"service-cidr-controller",
}

// controllerManager is a running kube-controller-manager.
type controllerManager struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
	url  string        // https://127.0.0.1:PORT
}

// controllerManagerArgs are its flags, as kubeadm sets them for a
// control-plane node: its own client-certificate kubeconfig for API calls
// and for delegated authentication and authorization of its secure port,
// one ServiceAccount per controller, the service-account signing key and
// the root CA it publishes into every namespace, leader election, and the
// secure port on loopback.
func (c *ControlPlane) controllerManagerArgs(port int) []string {
	kubeconfig := filepath.Join(c.certDir, controllerManagerKubeconfigFile)
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--client-ca-file=" + filepath.Join(c.certDir, clientCAFile),
		// kubeadm also gives it the front-proxy CA; this API server has no
		// front proxy (no --requestheader-client-ca-file), so there is
		// nothing to look up in kube-system's extension-apiserver-
		// authentication ConfigMap, and looking logs an error for ever.
		"--authentication-skip-lookup=true",
		"--bind-address=" + loopback,
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + filepath.Join(c.certDir, controllerManagerCertFile),
		"--tls-private-key-file=" + filepath.Join(c.certDir, controllerManagerKeyFile),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + filepath.Join(c.certDir, saKeyFile),
		"--root-ca-file=" + filepath.Join(c.certDir, servingCAFile),
		"--cluster-name=kubernetes",
		"--controllers=" + strings.Join(Controllers, ","),
		"--leader-elect=true",
		// A graceful stop gives up the Lease, so that the next start on the
		// same state leads at once instead of waiting out the previous
		// holder's 15s lease. Alpha in v1.36; it changes nothing else.
		"--feature-gates=ControllerManagerReleaseLeaderElectionLockOnExit=true",
	}
}

// startControllerManager writes the controller manager's kubeconfig and
// serving certificate, starts it on a free loopback port and waits until
// its /healthz passes (TLS verified against the serving CA) and it holds
// its Lease, which is when its controllers start.
func (c *ControlPlane) startControllerManager(ctx context.Context, cfg Config, servingCA []byte, timeout time.Duration) (*controllerManager, error) {
	user, err := c.plane.AddUser(envtest.User{Name: ControllerManagerUser}, &rest.Config{})
	if err != nil {
		return nil, fmt.Errorf("provision %s: %w", ControllerManagerUser, err)
	}
	if err := writeKubeconfig(filepath.Join(c.certDir, controllerManagerKubeconfigFile), user.Config()); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(servingCA) {
		return nil, errors.New("serving CA: no certificate")
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		m, err := c.tryControllerManager(ctx, cfg, pool)
		if err == nil {
			return m, nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start kube-controller-manager: %w", errors.Join(errs...))
}

// tryControllerManager is one start on fresh ports.
func (c *ControlPlane) tryControllerManager(ctx context.Context, cfg Config, pool *x509.CertPool) (_ *controllerManager, retErr error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	// The Lease's acquireTime is kept to the microsecond: a holder that
	// acquired it at or after this instant is this process.
	started := time.Now().Truncate(time.Microsecond)
	cmd := exec.Command(c.bins.controllerManager, c.controllerManagerArgs(ports[0])...)
	cmd.Stdout, cmd.Stderr = orDiscard(cfg.Out), orDiscard(cfg.Err)
	// Its own process group, as envtest starts etcd and kube-apiserver: a
	// Ctrl-C at the terminal reaches the parent, which stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &controllerManager{cmd: cmd, done: make(chan struct{}), url: "https://" + net.JoinHostPort(loopback, strconv.Itoa(ports[0]))}
	go func() {
		m.err = cmd.Wait()
		close(m.done)
	}()
	defer func() {
		if retErr != nil {
			_ = m.stop(DefaultStopTimeout)
		}
	}()

	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	var last error
	err = wait.PollUntilContextCancel(ctx, healthPollInterval, true, func(ctx context.Context) (bool, error) {
		select {
		case <-m.done:
			return false, fmt.Errorf("kube-controller-manager exited: %v", m.err)
		default:
		}
		last = healthy(ctx, hc, m.url+"/healthz")
		return last == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s/healthz: %w (last: %v)", m.url, err, last)
	}
	if err := waitForLeadership(ctx, c.admin, started, m.done); err != nil {
		return nil, err
	}
	return m, nil
}

// healthy GETs url and wants 200.
func healthy(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// waitForLeadership waits until the controller manager's Lease was acquired
// at or after started, by the process started then.
func waitForLeadership(ctx context.Context, cfg *rest.Config, started time.Time, exited <-chan struct{}) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var last string
	err = wait.PollUntilContextCancel(ctx, healthPollInterval, true, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, errors.New("kube-controller-manager exited")
		default:
		}
		lease, err := cs.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, controllerManagerLease, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			last = "no Lease yet"
			return false, nil
		case err != nil:
			last = err.Error()
			return false, nil
		}
		spec := lease.Spec
		if spec.HolderIdentity == nil || *spec.HolderIdentity == "" || spec.AcquireTime == nil || spec.AcquireTime.Time.Before(started) {
			last = fmt.Sprintf("held by %q since %v", ptr.Deref(spec.HolderIdentity, ""), spec.AcquireTime)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("kube-controller-manager did not take its Lease %s/%s: %w (last: %s)", metav1.NamespaceSystem, controllerManagerLease, err, last)
	}
	return nil
}

// stop sends SIGTERM, which makes it give up its Lease and stop its
// controllers, and kills it after timeout. A process that had already
// exited is reported: nothing else stops it while the control plane runs.
func (m *controllerManager) stop(timeout time.Duration) error {
	if m == nil {
		return nil
	}
	select {
	case <-m.done:
		return fmt.Errorf("kube-controller-manager had exited before Stop: %v", m.err)
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop kube-controller-manager: %w", err)
	}
	select {
	case <-m.done:
		return nil
	case <-time.After(timeout):
		_ = m.cmd.Process.Kill()
		<-m.done
		return fmt.Errorf("kube-controller-manager did not stop within %s; killed", timeout)
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// ControllerManagerURL is kube-controller-manager's secure port,
// https://127.0.0.1:PORT (its certificate is signed by the serving CA), or
// "" when Config.WithoutControllerManager.
func (c *ControlPlane) ControllerManagerURL() string {
	if c.cm == nil {
		return ""
	}
	return c.cm.url
}

// ServingCA is the CA, in PEM, of the API server's and the controller
// manager's serving certificates.
func (c *ControlPlane) ServingCA() []byte {
	return c.servingCA
}
