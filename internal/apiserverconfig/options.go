package apiserverconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// DefaultTokenCacheTTL is kube-apiserver's own default for
	// --authentication-token-webhook-cache-ttl: keeping it means wiring
	// Portcullis in does not change how long a token answer is trusted.
	DefaultTokenCacheTTL = 2 * time.Minute

	// DefaultAuthorizationTimeout bounds one SubjectAccessReview call. Our
	// decision is answered from memory in microseconds; 3s leaves room for a
	// slow TLS handshake without letting a dead webhook stall every request
	// for the upstream maximum.
	DefaultAuthorizationTimeout = 3 * time.Second

	// MaxAuthorizationTimeout is the upstream validation limit for an
	// authorization webhook's timeout.
	MaxAuthorizationTimeout = 30 * time.Second

	// DefaultAuthorizedTTL is the API server's default for caching an
	// "allowed" answer (--authorization-webhook-cache-authorized-ttl).
	DefaultAuthorizedTTL = 5 * time.Minute

	// DefaultUnauthorizedTTL is the API server's default for caching a
	// "denied"/no-opinion answer (--authorization-webhook-cache-unauthorized-ttl).
	DefaultUnauthorizedTTL = 30 * time.Second

	// NoCache, given as a TTL, disables that cache in the API server: token
	// answers are not cached (--authentication-token-webhook-cache-ttl=0s) or
	// the authorization configuration sets cacheAuthorizedRequests /
	// cacheUnauthorizedRequests to false. Any negative TTL means the same.
	NoCache time.Duration = -1

	// MaxMatchConditions is the upstream limit on matchConditions per
	// authorization webhook.
	MaxMatchConditions = 64

	// DefaultOperatorNamespace is where the operator runs unless told
	// otherwise (DESIGN.md: --namespace / POD_NAMESPACE).
	DefaultOperatorNamespace = "portcullis-system"

	// DefaultOperatorServiceAccount is the operator's service account as
	// config/default names it (namePrefix "portcullis-" + "controller-manager").
	DefaultOperatorServiceAccount = "portcullis-controller-manager"

	// KubeSystemNamespace's service accounts are the cluster's own
	// controllers; they never go through the Portcullis authorizer.
	KubeSystemNamespace = "kube-system"
)

// ControlPlaneUsers are the identities of the control-plane components
// other than the API server, as kubeadm names their client certificates.
// Like kube-system's service accounts they never go through the Portcullis
// authorizer: kube-controller-manager takes its Lease and mints the token
// of every controller's ServiceAccount as system:kube-controller-manager,
// so a Deny policy, or a Portcullis outage under failurePolicy Deny, must
// not stop the cluster's controllers.
var ControlPlaneUsers = []string{"system:kube-controller-manager", "system:kube-scheduler"}

// FailurePolicy is what the API server does when the authorization webhook
// cannot be reached, answers garbage, or a matchCondition fails to evaluate.
type FailurePolicy string

const (
	// FailurePolicyNoOpinion lets the next authorizer (RBAC) decide: a
	// Portcullis outage can only lose Deny policies, never lock anyone out.
	FailurePolicyNoOpinion FailurePolicy = "NoOpinion"
	// FailurePolicyDeny rejects the request: a Portcullis outage denies
	// everything the webhook would have been asked about.
	FailurePolicyDeny FailurePolicy = "Deny"
)

// Options says how kube-apiserver reaches the Portcullis webhook server.
type Options struct {
	// URL is the base URL of the webhook server, for example
	// https://127.0.0.1:9443 or
	// https://portcullis-webhook.portcullis-system.svc:443. It must be https;
	// the phase paths ("/authenticate", "/authorize") are appended to it.
	URL string

	// CABundle is the PEM bundle that verifies the webhook server's serving
	// certificate. Empty means the API server's system trust roots.
	CABundle []byte

	// ClientCertificate and ClientKey (PEM, both or neither) are what the
	// API server presents to /authenticate and /authorize, so that the
	// webhook server answers it alone: without them those endpoints are a
	// token oracle and a policy oracle to anyone who can reach them. They
	// are written into the webhook kubeconfigs, which are then secrets.
	ClientCertificate, ClientKey []byte

	// AdmissionCallers gives the API server's admission webhook calls the
	// client certificate too: an AdmissionConfiguration
	// (--admission-control-config-file) names a kubeconfig whose only user
	// is the certificate, for the webhook server's host alone, so that an
	// operator run with --authenticate-admission-callers answers admission
	// reviews to the API server alone. It needs ClientCertificate.
	AdmissionCallers bool

	// TokenCacheTTL is how long the API server caches a token review answer.
	// Zero means DefaultTokenCacheTTL; negative (NoCache) disables the cache.
	TokenCacheTTL time.Duration

	// Authorization puts the Portcullis authorizer in the chain, before RBAC.
	// Nil leaves it out: the AuthorizationConfiguration then holds only the
	// built-in authorizers.
	Authorization *AuthorizationOptions

	// IncludeNodeAuthorizer puts the Node authorizer first, as clusters with
	// kubelets need.
	IncludeNodeAuthorizer bool

	// ConfigDir is the absolute directory from which kube-apiserver reads the
	// rendered files, when that is not where Write writes them (rendering on
	// a workstation for /etc/kubernetes/portcullis on a control-plane node).
	// Empty means the directory Write is given.
	ConfigDir string
}

// AuthorizationOptions configures the Portcullis webhook authorizer.
type AuthorizationOptions struct {
	// Timeout bounds one SubjectAccessReview call. Zero means
	// DefaultAuthorizationTimeout; at most MaxAuthorizationTimeout.
	Timeout time.Duration

	// FailurePolicy applies when the webhook fails. Empty means
	// FailurePolicyNoOpinion.
	FailurePolicy FailurePolicy

	// AuthorizedTTL is how long the API server caches an allowed answer.
	// Zero means DefaultAuthorizedTTL; negative (NoCache) disables the cache.
	AuthorizedTTL time.Duration

	// UnauthorizedTTL is how long the API server caches a denied or
	// no-opinion answer. Zero means DefaultUnauthorizedTTL; negative
	// (NoCache) disables the cache.
	UnauthorizedTTL time.Duration

	// OperatorNamespace and OperatorServiceAccount name the operator's own
	// identity, which is always excluded from the webhook so that Portcullis
	// can never deny itself the access it needs to repair a bad policy.
	// Empty means DefaultOperatorNamespace / DefaultOperatorServiceAccount.
	OperatorNamespace      string
	OperatorServiceAccount string

	// ExcludedUsers are further usernames the webhook is never asked about,
	// in addition to the operator's identity and ControlPlaneUsers.
	ExcludedUsers []string

	// ExcludedServiceAccountNamespaces are namespaces whose service accounts
	// the webhook is never asked about, in addition to kube-system (always
	// excluded: the cluster's own controllers must keep working whatever the
	// policies say).
	ExcludedServiceAccountNamespaces []string
}

// withDefaults returns a copy of o with every zero value defaulted, or an
// error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	u, err := url.Parse(o.URL)
	switch {
	case o.URL == "":
		return o, errors.New("URL is required (the webhook server's base URL, e.g. https://127.0.0.1:9443)")
	case err != nil:
		return o, fmt.Errorf("URL %q: %w", o.URL, err)
	case u.Scheme != "https":
		return o, fmt.Errorf("URL %q: must be https (the API server sends tokens to it)", o.URL)
	case u.Host == "":
		return o, fmt.Errorf("URL %q: no host", o.URL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return o, fmt.Errorf("URL %q: must not carry user info, a query or a fragment", o.URL)
	}
	o.URL = strings.TrimSuffix(o.URL, "/")

	if len(o.CABundle) > 0 {
		if err := checkCABundle(o.CABundle); err != nil {
			return o, fmt.Errorf("CABundle: %w", err)
		}
	}
	if (len(o.ClientCertificate) > 0) != (len(o.ClientKey) > 0) {
		return o, errors.New("ClientCertificate and ClientKey: give both or neither")
	}
	if o.AdmissionCallers && len(o.ClientCertificate) == 0 {
		return o, errors.New("AdmissionCallers: needs ClientCertificate and ClientKey (the certificate admission calls present)")
	}
	if len(o.ClientCertificate) > 0 {
		if _, err := tls.X509KeyPair(o.ClientCertificate, o.ClientKey); err != nil {
			return o, fmt.Errorf("ClientCertificate and ClientKey: %w", err)
		}
	}

	switch {
	case o.TokenCacheTTL == 0:
		o.TokenCacheTTL = DefaultTokenCacheTTL
	case o.TokenCacheTTL < 0:
		o.TokenCacheTTL = NoCache
	}

	if o.ConfigDir != "" && !filepath.IsAbs(o.ConfigDir) {
		return o, fmt.Errorf("ConfigDir %q: must be an absolute path (the API server resolves it)", o.ConfigDir)
	}

	if o.Authorization != nil {
		a, err := o.Authorization.withDefaults()
		if err != nil {
			return o, fmt.Errorf("Authorization: %w", err)
		}
		o.Authorization = &a
	}
	return o, nil
}

func (a AuthorizationOptions) withDefaults() (AuthorizationOptions, error) {
	switch {
	case a.Timeout == 0:
		a.Timeout = DefaultAuthorizationTimeout
	case a.Timeout < 0 || a.Timeout > MaxAuthorizationTimeout:
		return a, fmt.Errorf("Timeout %s: must be > 0s and <= %s", a.Timeout, MaxAuthorizationTimeout)
	}

	switch a.FailurePolicy {
	case "":
		a.FailurePolicy = FailurePolicyNoOpinion
	case FailurePolicyNoOpinion, FailurePolicyDeny:
	default:
		return a, fmt.Errorf("FailurePolicy %q: must be %q or %q", a.FailurePolicy, FailurePolicyNoOpinion, FailurePolicyDeny)
	}

	a.AuthorizedTTL = defaultTTL(a.AuthorizedTTL, DefaultAuthorizedTTL)
	a.UnauthorizedTTL = defaultTTL(a.UnauthorizedTTL, DefaultUnauthorizedTTL)

	if a.OperatorNamespace == "" {
		a.OperatorNamespace = DefaultOperatorNamespace
	}
	if a.OperatorServiceAccount == "" {
		a.OperatorServiceAccount = DefaultOperatorServiceAccount
	}
	if errs := validation.IsDNS1123Label(a.OperatorNamespace); len(errs) > 0 {
		return a, fmt.Errorf("OperatorNamespace %q: %s", a.OperatorNamespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(a.OperatorServiceAccount); len(errs) > 0 {
		return a, fmt.Errorf("OperatorServiceAccount %q: %s", a.OperatorServiceAccount, strings.Join(errs, "; "))
	}

	users := []string{ServiceAccountUsername(a.OperatorNamespace, a.OperatorServiceAccount)}
	for _, u := range ControlPlaneUsers {
		users = appendUnique(users, u)
	}
	for _, u := range a.ExcludedUsers {
		if u == "" {
			return a, errors.New("ExcludedUsers: empty username")
		}
		users = appendUnique(users, u)
	}
	a.ExcludedUsers = users

	namespaces := []string{KubeSystemNamespace}
	for _, ns := range a.ExcludedServiceAccountNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return a, fmt.Errorf("ExcludedServiceAccountNamespaces %q: %s", ns, strings.Join(errs, "; "))
		}
		namespaces = appendUnique(namespaces, ns)
	}
	a.ExcludedServiceAccountNamespaces = namespaces

	// One condition for the users, one per namespace.
	if n := 1 + len(namespaces); n > MaxMatchConditions {
		return a, fmt.Errorf("ExcludedServiceAccountNamespaces: %d namespaces and the users make %d guards, more than the limit of %d that keeps the one expression the API server evaluates on every request cheap", len(namespaces), n, MaxMatchConditions)
	}
	return a, nil
}

// defaultTTL maps zero to def and any negative value to NoCache.
func defaultTTL(ttl, def time.Duration) time.Duration {
	switch {
	case ttl == 0:
		return def
	case ttl < 0:
		return NoCache
	}
	return ttl
}

// ServiceAccountUsername is the username the API server gives a service
// account's tokens.
func ServiceAccountUsername(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// checkCABundle accepts PEM that holds at least one certificate and nothing
// that fails to parse, so that a wrong file is reported here and not as a TLS
// error in the API server's log.
func checkCABundle(data []byte) error {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("unexpected PEM block %q (want CERTIFICATE)", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate found")
	}
	return nil
}
