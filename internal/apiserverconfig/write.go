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
	// AdmissionConfig is given to --admission-control-config-file; empty
	// unless Options.AdmissionCallers.
	AdmissionConfig string
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
	if err := writeOrRemove(dir, AuthorizationWebhookKubeconfigFile, r.AuthorizationWebhookKubeconfig); err != nil {
		return nil, err
	}
	if r.AuthorizationWebhookKubeconfig != nil {
		files.AuthorizationWebhookKubeconfig = filepath.Join(cfgDir, AuthorizationWebhookKubeconfigFile)
	}
	// Each configuration is written after the kubeconfig it names, which
	// must exist when a running API server reloads it.
	if err := writeOrRemove(dir, AdmissionWebhookKubeconfigFile, r.AdmissionWebhookKubeconfig); err != nil {
		return nil, err
	}
	if err := writeOrRemove(dir, AdmissionConfigFile, r.AdmissionConfig); err != nil {
		return nil, err
	}
	if r.AdmissionConfig != nil {
		files.AdmissionConfig = filepath.Join(cfgDir, AdmissionConfigFile)
	}
	if err := atomicfile.Write(filepath.Join(dir, AuthorizationConfigFile), r.AuthorizationConfig, fileMode); err != nil {
		return nil, err
	}
	return files, nil
}

// writeOrRemove writes data into dir/name, or removes a stale dir/name
// from an earlier Write when data is nil.
func writeOrRemove(dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	if data != nil {
		return atomicfile.Write(path, data, fileMode)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// APIServerFlags returns the kube-apiserver flags that load the files. It
// never returns --authorization-mode: kube-apiserver refuses it together with
// --authorization-config, which already lists every authorizer.
func (f *Files) APIServerFlags() []string {
	ttl := f.TokenCacheTTL
	if ttl < 0 {
		ttl = 0 // the flag's way of saying "do not cache"
	}
	flags := []string{
		"--authentication-token-webhook-config-file=" + f.TokenWebhookKubeconfig,
		"--authentication-token-webhook-version=" + reviewVersion,
		"--authentication-token-webhook-cache-ttl=" + ttl.String(),
		"--authorization-config=" + f.AuthorizationConfig,
	}
	if f.AdmissionConfig != "" {
		flags = append(flags, "--admission-control-config-file="+f.AdmissionConfig)
	}
	return flags
}
