package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	// EnvAssets names the directory holding kube-apiserver,
	// kube-controller-manager, etcd and kubectl; `make run` sets it.
	EnvAssets = "PORTCULLIS_ASSETS"
	// EnvKubebuilderAssets is envtest's variable for the same directory;
	// `make test` sets it.
	EnvKubebuilderAssets = "KUBEBUILDER_ASSETS"
)

// binaries are the executables a control plane needs, by role.
type binaries struct {
	apiServer, controllerManager, etcd, kubectl string
}

// AssetsDir returns the directory holding the control-plane binaries:
// $PORTCULLIS_ASSETS, else $KUBEBUILDER_ASSETS. It fails with instructions
// when neither is set or the directory lacks a binary.
func AssetsDir() (string, error) {
	for _, env := range []string{EnvAssets, EnvKubebuilderAssets} {
		if dir := os.Getenv(env); dir != "" {
			if _, err := findBinaries(dir); err != nil {
				return "", fmt.Errorf("$%s: %w", env, err)
			}
			return dir, nil
		}
	}
	return "", errors.New("control-plane binaries not found: neither $" + EnvAssets + " nor $" + EnvKubebuilderAssets +
		" is set; run `make control-plane` and set " + EnvAssets + " to the directory it prints (or run the tests with `make test`, which sets " + EnvKubebuilderAssets + ")")
}

// findBinaries checks that dir holds the four executables.
func findBinaries(dir string) (binaries, error) {
	b := binaries{
		apiServer:         filepath.Join(dir, "kube-apiserver"),
		controllerManager: filepath.Join(dir, "kube-controller-manager"),
		etcd:              filepath.Join(dir, "etcd"),
		kubectl:           filepath.Join(dir, "kubectl"),
	}
	var missing []string
	for _, p := range []string{b.apiServer, b.controllerManager, b.etcd, b.kubectl} {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			missing = append(missing, filepath.Base(p))
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("%s has no executable %s; run `make control-plane` (hack/control-plane.sh) and use the directory it prints", dir, strings.Join(missing, ", "))
	}
	return b, nil
}
