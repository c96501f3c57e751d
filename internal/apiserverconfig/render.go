package apiserverconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	webhookadmissionv1 "k8s.io/apiserver/pkg/admission/plugin/webhook/config/apis/webhookadmission/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

const (
	// AuthenticatePath is where the webhook server answers TokenReviews.
	AuthenticatePath = "/authenticate"
	// AuthorizePath is where the webhook server answers SubjectAccessReviews.
	AuthorizePath = "/authorize"

	// AuthorizerName names the Portcullis webhook in the
	// AuthorizationConfiguration; the API server labels its authorizer
	// metrics with it.
	AuthorizerName = "portcullis"

	// TokenWebhookKubeconfigFile is the file name of the token webhook
	// kubeconfig (--authentication-token-webhook-config-file).
	TokenWebhookKubeconfigFile = "token-webhook.kubeconfig"
	// AuthorizationWebhookKubeconfigFile is the file name of the
	// authorization webhook kubeconfig, named by the AuthorizationConfiguration.
	AuthorizationWebhookKubeconfigFile = "authorization-webhook.kubeconfig"
	// AuthorizationConfigFile is the file name of the AuthorizationConfiguration
	// (--authorization-config).
	AuthorizationConfigFile = "authorization-config.yaml"
	// AdmissionConfigFile is the file name of the AdmissionConfiguration
	// (--admission-control-config-file), rendered when
	// Options.AdmissionCallers.
	AdmissionConfigFile = "admission-config.yaml"
	// AdmissionWebhookKubeconfigFile is the file name of the kubeconfig
	// the AdmissionConfiguration gives both webhook admission plugins.
	AdmissionWebhookKubeconfigFile = "admission-webhook.kubeconfig"

	// The admission plugins that call webhooks, as kube-apiserver
	// registers them (k8s.io/apiserver/pkg/admission/plugin/webhook).
	mutatingWebhookPlugin   = "MutatingAdmissionWebhook"
	validatingWebhookPlugin = "ValidatingAdmissionWebhook"

	// reviewVersion is the authentication.k8s.io / authorization.k8s.io
	// version the webhook server speaks natively.
	reviewVersion = "v1"

	// kubeconfigCluster, kubeconfigUser and kubeconfigContext name the single
	// entries of the webhook kubeconfigs. The user is the API server's
	// client certificate when Options has one; without it the webhook
	// server can only trust the network.
	kubeconfigCluster = "portcullis"
	kubeconfigUser    = "kube-apiserver"
	kubeconfigContext = "portcullis"

	// Built-in authorizer types and the names kube-apiserver requires for
	// them (the lower-cased type).
	authorizerTypeNode    = "Node"
	authorizerNameNode    = "node"
	authorizerTypeRBAC    = "RBAC"
	authorizerNameRBAC    = "rbac"
	authorizerTypeWebhook = "Webhook"
)

// Rendered holds the rendered files' contents.
type Rendered struct {
	// Options are the options after defaulting.
	Options Options
	// TokenWebhookKubeconfig is the content of TokenWebhookKubeconfigFile.
	TokenWebhookKubeconfig []byte
	// AuthorizationWebhookKubeconfig is the content of
	// AuthorizationWebhookKubeconfigFile; nil when Options.Authorization is nil.
	AuthorizationWebhookKubeconfig []byte
	// AuthorizationConfig is the content of AuthorizationConfigFile.
	AuthorizationConfig []byte
	// AdmissionConfig and AdmissionWebhookKubeconfig are the contents of
	// AdmissionConfigFile and AdmissionWebhookKubeconfigFile; nil unless
	// Options.AdmissionCallers.
	AdmissionConfig, AdmissionWebhookKubeconfig []byte
}

// Files maps each rendered file's name to its content; files that are
// not rendered are absent.
func (r *Rendered) Files() map[string][]byte {
	out := map[string][]byte{
		TokenWebhookKubeconfigFile: r.TokenWebhookKubeconfig,
		AuthorizationConfigFile:    r.AuthorizationConfig,
	}
	for name, data := range map[string][]byte{
		AuthorizationWebhookKubeconfigFile: r.AuthorizationWebhookKubeconfig,
		AdmissionWebhookKubeconfigFile:     r.AdmissionWebhookKubeconfig,
		AdmissionConfigFile:                r.AdmissionConfig,
	} {
		if data != nil {
			out[name] = data
		}
	}
	return out
}

// Render renders every file from o. o.ConfigDir must be set: the
// AuthorizationConfiguration names the authorization webhook kubeconfig by
// absolute path.
func Render(o Options) (*Rendered, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.ConfigDir == "" {
		return nil, errors.New("ConfigDir is required to render (the AuthorizationConfiguration names the webhook kubeconfig by absolute path)")
	}
	r := &Rendered{Options: o}
	if r.TokenWebhookKubeconfig, err = webhookKubeconfig(o, AuthenticatePath); err != nil {
		return nil, fmt.Errorf("token webhook kubeconfig: %w", err)
	}
	if o.Authorization != nil {
		if r.AuthorizationWebhookKubeconfig, err = webhookKubeconfig(o, AuthorizePath); err != nil {
			return nil, fmt.Errorf("authorization webhook kubeconfig: %w", err)
		}
	}
	ac, err := AuthorizationConfiguration(o)
	if err != nil {
		return nil, err
	}
	body, err := yaml.Marshal(ac)
	if err != nil {
		return nil, fmt.Errorf("AuthorizationConfiguration: %w", err)
	}
	r.AuthorizationConfig = append([]byte("# Rendered by Portcullis: give it to kube-apiserver --authorization-config.\n"), body...)
	if o.AdmissionCallers {
		if r.AdmissionWebhookKubeconfig, err = admissionKubeconfig(o); err != nil {
			return nil, fmt.Errorf("admission webhook kubeconfig: %w", err)
		}
		if r.AdmissionConfig, err = admissionConfiguration(filepath.Join(o.ConfigDir, AdmissionWebhookKubeconfigFile)); err != nil {
			return nil, fmt.Errorf("AdmissionConfiguration: %w", err)
		}
	}
	return r, nil
}

// admissionKubeconfig renders the kubeconfig of the webhook admission
// plugins: its one user is the API server's client certificate, named by
// the webhook server's host[:port] as the plugins look users up (the
// Service's DNS name and port when the webhook configurations name the
// Service). Never "*" or a current context: the certificate is sent to
// no other webhook, for it opens /authenticate and /authorize.
func admissionKubeconfig(o Options) ([]byte, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData, user.ClientKeyData = o.ClientCertificate, o.ClientKey
	cfg.AuthInfos[u.Host] = user
	return clientcmd.Write(*cfg)
}

// admissionConfiguration renders the AdmissionConfiguration that gives
// both webhook admission plugins the kubeconfig at kubeconfig.
func admissionConfiguration(kubeconfig string) ([]byte, error) {
	wa, err := json.Marshal(webhookadmissionv1.WebhookAdmission{
		TypeMeta:       metav1.TypeMeta{APIVersion: webhookadmissionv1.SchemeGroupVersion.String(), Kind: "WebhookAdmissionConfiguration"},
		KubeConfigFile: kubeconfig,
	})
	if err != nil {
		return nil, err
	}
	ac := apiserverv1.AdmissionConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: apiserverv1.SchemeGroupVersion.String(), Kind: "AdmissionConfiguration"},
	}
	for _, name := range []string{mutatingWebhookPlugin, validatingWebhookPlugin} {
		ac.Plugins = append(ac.Plugins, apiserverv1.AdmissionPluginConfiguration{Name: name, Configuration: &runtime.Unknown{Raw: wa}})
	}
	body, err := yaml.Marshal(ac)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Rendered by Portcullis: give it to kube-apiserver --admission-control-config-file\n# (merge its plugins into the file you already give it, if any).\n"), body...), nil
}

// webhookKubeconfig renders a kubeconfig whose only cluster is the webhook
// server at o.URL+path, verified with o.CABundle.
func webhookKubeconfig(o Options, path string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = o.URL + path
	cluster.CertificateAuthorityData = o.CABundle
	cfg.Clusters[kubeconfigCluster] = cluster
	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData, user.ClientKeyData = o.ClientCertificate, o.ClientKey
	cfg.AuthInfos[kubeconfigUser] = user
	ctx := clientcmdapi.NewContext()
	ctx.Cluster = kubeconfigCluster
	ctx.AuthInfo = kubeconfigUser
	cfg.Contexts[kubeconfigContext] = ctx
	cfg.CurrentContext = kubeconfigContext
	return clientcmd.Write(*cfg)
}

// AuthorizationConfiguration builds the typed AuthorizationConfiguration for
// o: [Node], the Portcullis webhook when o.Authorization is set, then RBAC.
// The webhook's kubeconfig is o.ConfigDir/AuthorizationWebhookKubeconfigFile.
func AuthorizationConfiguration(o Options) (*apiserverv1.AuthorizationConfiguration, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	ac := &apiserverv1.AuthorizationConfiguration{
		TypeMeta: metav1.TypeMeta{
			APIVersion: apiserverv1.SchemeGroupVersion.String(),
			Kind:       "AuthorizationConfiguration",
		},
	}
	if o.IncludeNodeAuthorizer {
		ac.Authorizers = append(ac.Authorizers, apiserverv1.AuthorizerConfiguration{Type: authorizerTypeNode, Name: authorizerNameNode})
	}
	if a := o.Authorization; a != nil {
		if o.ConfigDir == "" {
			return nil, errors.New("ConfigDir is required (the AuthorizationConfiguration names the webhook kubeconfig by absolute path)")
		}
		kubeconfig := filepath.Join(o.ConfigDir, AuthorizationWebhookKubeconfigFile)
		authorizedTTL, cacheAuthorized := cacheTTL(a.AuthorizedTTL, DefaultAuthorizedTTL)
		unauthorizedTTL, cacheUnauthorized := cacheTTL(a.UnauthorizedTTL, DefaultUnauthorizedTTL)
		ac.Authorizers = append(ac.Authorizers, apiserverv1.AuthorizerConfiguration{
			Type: authorizerTypeWebhook,
			Name: AuthorizerName,
			Webhook: &apiserverv1.WebhookConfiguration{
				AuthorizedTTL:                            metav1.Duration{Duration: authorizedTTL},
				CacheAuthorizedRequests:                  &cacheAuthorized,
				UnauthorizedTTL:                          metav1.Duration{Duration: unauthorizedTTL},
				CacheUnauthorizedRequests:                &cacheUnauthorized,
				Timeout:                                  metav1.Duration{Duration: a.Timeout},
				SubjectAccessReviewVersion:               reviewVersion,
				MatchConditionSubjectAccessReviewVersion: reviewVersion,
				FailurePolicy:                            string(a.FailurePolicy),
				ConnectionInfo: apiserverv1.WebhookConnectionInfo{
					Type:           apiserverv1.AuthorizationWebhookConnectionInfoTypeKubeConfigFile,
					KubeConfigFile: &kubeconfig,
				},
				MatchConditions: matchConditions(*a),
			},
		})
	}
	ac.Authorizers = append(ac.Authorizers, apiserverv1.AuthorizerConfiguration{Type: authorizerTypeRBAC, Name: authorizerNameRBAC})
	return ac, nil
}

// cacheTTL maps a defaulted TTL to the (ttl, cache) pair of the webhook
// configuration. Upstream validation requires a positive TTL even when the
// cache is off, so NoCache renders the default TTL with caching disabled.
func cacheTTL(ttl, def time.Duration) (time.Duration, bool) {
	if ttl < 0 {
		return def, false
	}
	return ttl, true
}

// matchConditions renders the lockout guards of a defaulted
// AuthorizationOptions: the listed users, the service accounts of the
// excluded namespaces and anonymous health probes are never sent to the
// webhook. The API server
// evaluates a webhook's matchConditions on every request, before its
// cache of answers, so the guards are one expression: one program run
// per request rather than one per guard.
func matchConditions(a AuthorizationOptions) []apiserverv1.WebhookMatchCondition {
	quoted := make([]string, len(a.ExcludedUsers))
	for i, u := range a.ExcludedUsers {
		quoted[i] = celString(u)
	}
	terms := []string{"request.user in [" + strings.Join(quoted, ", ") + "]"}
	for _, ns := range a.ExcludedServiceAccountNamespaces {
		terms = append(terms, "request.user.startsWith("+celString(ServiceAccountUsername(ns, ""))+")")
	}
	terms = append(terms, renderHealthProbes())
	return []apiserverv1.WebhookMatchCondition{{Expression: "!(" + strings.Join(terms, " || ") + ")"}}
}

// celString quotes s as a single-quoted CEL string literal. Quotes and
// backslashes are escaped; runes that are not printable are written as
// \u/\U escapes so that the expression stays on one readable line.
func celString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		case !unicode.IsPrint(r) && r <= 0xFFFF:
			fmt.Fprintf(&b, `\u%04X`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
