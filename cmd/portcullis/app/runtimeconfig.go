package app

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
)

// KnownGroupVersions are the API group/versions this binary serves. Each is
// on by default; --runtime-config=GROUP/VERSION=false turns one off: its
// CRDs are not installed, its controllers and webhook path not started.
var KnownGroupVersions = []string{
	authnv1alpha1.GroupVersion.String(),
	authzv1alpha1.GroupVersion.String(),
	admissionv1alpha1.GroupVersion.String(),
	operatorv1alpha1.GroupVersion.String(),
}

// RuntimeConfig says which group/versions are on, in the manner of
// kube-apiserver's --runtime-config.
type RuntimeConfig map[string]bool

// ParseRuntimeConfig reads GROUP/VERSION=true|false pairs. An unknown
// group/version or a value that is not a boolean is an error, so a typo
// never leaves a phase silently on.
func ParseRuntimeConfig(pairs map[string]string) (RuntimeConfig, error) {
	rc := RuntimeConfig{}
	for _, gv := range KnownGroupVersions {
		rc[gv] = true
	}
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		gv := strings.TrimSpace(k)
		if _, ok := rc[gv]; !ok {
			return nil, fmt.Errorf("--runtime-config: unknown group/version %q (known: %s)", gv, strings.Join(KnownGroupVersions, ", "))
		}
		v, err := strconv.ParseBool(strings.TrimSpace(pairs[k]))
		if err != nil {
			return nil, fmt.Errorf("--runtime-config: %s=%q: want true or false", gv, pairs[k])
		}
		rc[gv] = v
	}
	return rc, nil
}

// Enabled reports whether group/version is on.
func (rc RuntimeConfig) Enabled(group, version string) bool {
	return rc[group+"/"+version]
}
