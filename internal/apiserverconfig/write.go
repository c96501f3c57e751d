package apiserverconfig

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-io/portcullis/internal/atomicfile"
)

const (
	// fileMode keeps the rendered files private to the API server's user:
	// they say where the API server sends every bearer token.
	fileMode fs.FileMode = 0o600
	// dirMode is the mode of a directory Write creates.
	dirMode fs.FileMode = 0o700
)

// Files are the paths of the rendered files as kube-apiserver reads them
// (under Options.ConfigDir, which defaults to the directory written to).
type Files struct {
	// Dir is the directory the files were written to.
	Dir string
	// TokenWebhookKubeconfig is given to
	// --authentication-token-webhook-config-file.
	TokenWebhookKubeconfig string
	// AuthorizationWebhookKubeconfig is named by the AuthorizationConfiguration;
	// empty when the Portcullis authorizer is not in the chain.
	AuthorizationWebhookKubeconfig string
	// AuthorizationConfig is given to --authorization-config.
	AuthorizationConfig string
	// TokenCacheTTL is the defaulted token cache TTL (NoCache: no cache).
	TokenCacheTTL time.Duration
}

// Write renders o and writes the files into dir (created if missing), each
// with mode 0600 and replaced atomically, because kube-apiserver reloads the
// AuthorizationConfiguration when it changes and must never read half a file.
// When o.Authorization is nil a stale authorization webhook kubeconfig from
// an earlier Write is removed.
func Write(dir string, o Options) (*Files, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if o.ConfigDir == "" {
		o.ConfigDir = dir
	}
	r, err := Render(o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, err
	}
	cfgDir := r.Options.ConfigDir
	files := &Files{
		Dir:                    dir,
		TokenWebhookKubeconfig: filepath.Join(cfgDir, TokenWebhookKubeconfigFile),
		AuthorizationConfig:    filepath.Join(cfgDir, AuthorizationConfigFile),
		TokenCacheTTL:          r.Options.TokenCacheTTL,
	}
	if err := atomicfile.Write(filepath.Join(dir, TokenWebhookKubeconfigFile), r.TokenWebhookKubeconfig, fileMode); err != nil {
		return nil, err
	}
	authzKubeconfig := filepath.Join(dir, AuthorizationWebhookKubeconfigFile)
	if r.AuthorizationWebhookKubeconfig != nil {
		if err := atomicfile.Write(authzKubeconfig, r.AuthorizationWebhookKubeconfig, fileMode); err != nil {
			return nil, err
		}
		files.AuthorizationWebhookKubeconfig = filepath.Join(cfgDir, AuthorizationWebhookKubeconfigFile)
	} else if err := os.Remove(authzKubeconfig); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// Written last: it names the authorization webhook kubeconfig, which
	// must exist when a running API server reloads it.
	if err := atomicfile.Write(filepath.Join(dir, AuthorizationConfigFile), r.AuthorizationConfig, fileMode); err != nil {
		return nil, err
	}
	return files, nil
}

// APIServerFlags returns the kube-apiserver flags that load the files. It
// never returns --authorization-mode: kube-apiserver refuses it together with
// --authorization-config, which already lists every authorizer.
func (f *Files) APIServerFlags() []string {
	ttl := f.TokenCacheTTL
	if ttl < 0 {
		ttl = 0 // the flag's way of saying "do not cache"
	}
	return []string{
		"--authentication-token-webhook-config-file=" + f.TokenWebhookKubeconfig,
		"--authentication-token-webhook-version=" + reviewVersion,
		"--authentication-token-webhook-cache-ttl=" + ttl.String(),
		"--authorization-config=" + f.AuthorizationConfig,
	}
}
