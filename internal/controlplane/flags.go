package controlplane

import (
	"fmt"
	"strings"
)

// reservedFlags are kube-apiserver flags the control plane owns; an extra
// flag may not set them because the result would not be the wiring a
// cluster admin gets (or would not start at all).
var reservedFlags = map[string]string{
	"authorization-mode":                       "kube-apiserver refuses it with --authorization-config; choose authorizers with Config.Wiring",
	"authorization-config":                     "rendered from Config.Wiring",
	"authentication-token-webhook-config-file": "rendered from Config.Wiring",
	"authentication-token-webhook-version":     "rendered from Config.Wiring",
	"authentication-token-webhook-cache-ttl":   "set Config.Wiring.TokenCacheTTL",
	"admission-control-config-file":            "rendered from Config.Wiring (AdmissionCallers)",
	"secure-port":                              "the control plane picks a free loopback port",
	"bind-address":                             "the control plane listens on 127.0.0.1 only",
	"cert-dir":                                 "the control plane owns its certificates",
	"tls-cert-file":                            "the control plane owns its certificates",
	"tls-private-key-file":                     "the control plane owns its certificates",
	"client-ca-file":                           "the admin user's client certificates depend on it",
	"etcd-servers":                             "the control plane runs its own etcd",
	"service-account-issuer":                   "the control plane keeps it stable across restarts",
	"service-account-key-file":                 "the control plane owns the signing key",
	"service-account-signing-key-file":         "the control plane owns the signing key",
}

// flag is one parsed "--name[=value]" argument.
type flag struct {
	name     string
	value    string
	hasValue bool
}

// parseFlag splits "--name=value" (or "--name") and rejects anything else,
// so that a typo fails here and not as an API server that never becomes
// ready.
func parseFlag(arg string) (flag, error) {
	rest, ok := strings.CutPrefix(arg, "--")
	if !ok || rest == "" || strings.HasPrefix(rest, "-") {
		return flag{}, fmt.Errorf("API server flag %q: want --name=value", arg)
	}
	name, value, hasValue := strings.Cut(rest, "=")
	if name == "" || strings.ContainsAny(name, " \t") {
		return flag{}, fmt.Errorf("API server flag %q: want --name=value", arg)
	}
	return flag{name: name, value: value, hasValue: hasValue}, nil
}

// parseExtraFlags parses Config.ExtraAPIServerFlags.
func parseExtraFlags(args []string) ([]flag, error) {
	flags := make([]flag, 0, len(args))
	for _, arg := range args {
		f, err := parseFlag(arg)
		if err != nil {
			return nil, err
		}
		if why, reserved := reservedFlags[f.name]; reserved {
			return nil, fmt.Errorf("API server flag --%s cannot be set in ExtraAPIServerFlags: %s", f.name, why)
		}
		flags = append(flags, f)
	}
	return flags, nil
}
