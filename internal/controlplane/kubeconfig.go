package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/portcullis-io/portcullis/internal/atomicfile"
)

const (
	// kubeconfigName names the cluster, user and context of the kubeconfigs
	// written here, so that `kubectl config get-contexts` says what it is.
	kubeconfigName = "portcullis-dev"
	// kubeconfigFileMode: kubeconfigs hold a client key or a bearer token.
	kubeconfigFileMode = 0o600
	// kubectlStderrLimit caps how much of kubectl's stderr an error repeats;
	// the full text is returned separately.
	kubectlStderrLimit = 4096
)

// WriteAdminKubeconfig writes a kubeconfig for the admin (system:masters
// client certificate) to path, mode 0600.
func (c *ControlPlane) WriteAdminKubeconfig(path string) error {
	return writeKubeconfig(path, c.admin)
}

// WriteTokenKubeconfig writes a kubeconfig for the bearer-token user of
// TokenConfig(token) to path, mode 0600.
func (c *ControlPlane) WriteTokenKubeconfig(path, token string) error {
	return writeKubeconfig(path, c.TokenConfig(token))
}

// Kubectl runs the assets directory's kubectl with --kubeconfig and args and
// returns its output. An empty kubeconfigPath means the admin's. The error
// of a failed run includes (the start of) stderr.
func (c *ControlPlane) Kubectl(ctx context.Context, kubeconfigPath string, args ...string) (stdout, stderr string, err error) {
	if kubeconfigPath == "" {
		if kubeconfigPath, err = c.adminKubeconfig(); err != nil {
			return "", "", err
		}
	}
	var outBuf, errBuf bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bins.kubectl, append([]string{"--kubeconfig=" + kubeconfigPath}, args...)...)
	cmd.Stdout = &outBuf
	cmd.Stderr = &errBuf
	// KUBECONFIG would be ignored with --kubeconfig anyway; keep the
	// environment otherwise, for HOME (kubectl's cache dir).
	cmd.Env = os.Environ()
	if runErr := cmd.Run(); runErr != nil {
		msg := strings.TrimSpace(errBuf.String())
		if len(msg) > kubectlStderrLimit {
			msg = msg[:kubectlStderrLimit] + "..."
		}
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), runErr, msg)
	}
	return outBuf.String(), errBuf.String(), err
}

// adminKubeconfig writes the admin kubeconfig into the cert dir (once per
// start: the admin certificate does not change while running).
func (c *ControlPlane) adminKubeconfig() (string, error) {
	c.kubeconfigMu.Lock()
	defer c.kubeconfigMu.Unlock()
	if c.adminKubeconfigPath != "" {
		return c.adminKubeconfigPath, nil
	}
	path := filepath.Join(c.certDir, adminKubeconfigFile)
	if err := c.WriteAdminKubeconfig(path); err != nil {
		return "", err
	}
	c.adminKubeconfigPath = path
	return path, nil
}

// writeKubeconfig writes cfg as a single-context kubeconfig, replacing path
// atomically so that a kubectl running concurrently never reads half a file.
func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = cfg.Host
	cluster.CertificateAuthorityData = cfg.CAData
	kc.Clusters[kubeconfigName] = cluster
	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData = cfg.CertData
	user.ClientKeyData = cfg.KeyData
	user.Token = cfg.BearerToken
	kc.AuthInfos[kubeconfigName] = user
	kctx := clientcmdapi.NewContext()
	kctx.Cluster = kubeconfigName
	kctx.AuthInfo = kubeconfigName
	kc.Contexts[kubeconfigName] = kctx
	kc.CurrentContext = kubeconfigName
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}

	return atomicfile.Write(path, data, kubeconfigFileMode)
}
