package apiserverconfig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/admission"
	webhookconfig "k8s.io/apiserver/pkg/admission/plugin/webhook/config"
	api "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/apis/apiserver/load"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/apiserver/pkg/apis/apiserver/validation"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/portcullis-io/portcullis/internal/certs"
)

// knownAuthorizerTypes and repeatableAuthorizerTypes are kube-apiserver's
// (k8s.io/kubernetes pkg/kubeapiserver/authorizer/modes and config.go),
// copied because that module is not a dependency of ours.
var (
	knownAuthorizerTypes      = sets.New("AlwaysAllow", "AlwaysDeny", "ABAC", "Webhook", "RBAC", "Node")
	repeatableAuthorizerTypes = sets.New("Webhook")
)

// loadAndValidate loads an AuthorizationConfiguration file the way
// kube-apiserver does (strict decoding, v1 converted to the internal type)
// and runs the upstream validation on it, plus kube-apiserver's own rule that
// a built-in authorizer is named after its lower-cased type.
func loadAndValidate(t *testing.T, path string) *api.AuthorizationConfiguration {
	t.Helper()
	cfg, err := load.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	errs := validation.ValidateAuthorizationConfiguration(authorizationcel.NewDefaultCompiler(), nil, cfg, knownAuthorizerTypes, repeatableAuthorizerTypes)
	if len(errs) > 0 {
		t.Fatalf("upstream validation of %s: %v", path, errs.ToAggregate())
	}
	for _, a := range cfg.Authorizers {
		if a.Type != "Webhook" && a.Name != strings.ToLower(string(a.Type)) {
			t.Errorf("authorizer %s is named %q; kube-apiserver requires %q", a.Type, a.Name, strings.ToLower(string(a.Type)))
		}
	}
	return cfg
}

// testCA returns a PEM self-signed CA certificate.
func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestWriteTokenAndAuthorizationKubeconfigs(t *testing.T) {
	ca := testCA(t)
	dir := filepath.Join(t.TempDir(), "wiring")
	files, err := Write(dir, Options{
		URL:           "https://127.0.0.1:9443/",
		CABundle:      ca,
		Authorization: &AuthorizationOptions{},
	})
	if err != nil {
		t.Fatal(err)
	}

	for path, wantServer := range map[string]string{
		files.TokenWebhookKubeconfig:         "https://127.0.0.1:9443/authenticate",
		files.AuthorizationWebhookKubeconfig: "https://127.0.0.1:9443/authorize",
	} {
		if filepath.Dir(path) != dir {
			t.Errorf("%s: not in %s", path, dir)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, st.Mode().Perm())
		}
		kc, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(kc.Clusters) != 1 || len(kc.AuthInfos) != 1 || len(kc.Contexts) != 1 {
			t.Fatalf("%s: want one cluster, user and context, got %+v", path, kc)
		}
		ctx, ok := kc.Contexts[kc.CurrentContext]
		if !ok {
			t.Fatalf("%s: current-context %q does not exist", path, kc.CurrentContext)
		}
		cluster := kc.Clusters[ctx.Cluster]
		if cluster == nil || cluster.Server != wantServer {
			t.Errorf("%s: server = %+v, want %s", path, cluster, wantServer)
		} else if string(cluster.CertificateAuthorityData) != string(ca) {
			t.Errorf("%s: certificate-authority-data is not the CA bundle", path)
		}
		user := kc.AuthInfos[ctx.AuthInfo]
		if user == nil {
			t.Fatalf("%s: context user %q does not exist", path, ctx.AuthInfo)
		}
		if user.Token != "" || user.TokenFile != "" || len(user.ClientCertificateData) > 0 || user.ClientCertificate != "" ||
			user.Username != "" || user.Password != "" || user.Exec != nil || user.AuthProvider != nil {
			t.Errorf("%s: the user entry carries credentials: %+v", path, user)
		}
	}

	wantFlags := []string{
		"--authentication-token-webhook-config-file=" + filepath.Join(dir, TokenWebhookKubeconfigFile),
		"--authentication-token-webhook-version=v1",
		"--authentication-token-webhook-cache-ttl=2m0s",
		"--authorization-config=" + filepath.Join(dir, AuthorizationConfigFile),
	}
	if got := files.APIServerFlags(); !reflect.DeepEqual(got, wantFlags) {
		t.Errorf("APIServerFlags:\n got %q\nwant %q", got, wantFlags)
	}
}

// TestAuthorizationConfigurationGolden pins the whole rendered file for the
// defaults: the shape cluster admins see and the API server loads.
func TestAuthorizationConfigurationGolden(t *testing.T) {
	dir := t.TempDir()
	files, err := Write(dir, Options{URL: "https://portcullis-webhook.portcullis-system.svc:443", Authorization: &AuthorizationOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(files.AuthorizationConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := `# Rendered by Portcullis: give it to kube-apiserver --authorization-config.
apiVersion: apiserver.config.k8s.io/v1
authorizers:
- name: portcullis
  type: Webhook
  webhook:
    authorizedTTL: 5m0s
    cacheAuthorizedRequests: true
    cacheUnauthorizedRequests: true
    connectionInfo:
      kubeConfigFile: ` + filepath.Join(dir, AuthorizationWebhookKubeconfigFile) + `
      type: KubeConfigFile
    failurePolicy: NoOpinion
    matchConditionSubjectAccessReviewVersion: v1
    matchConditions:
    - expression: '!(request.user in [''system:serviceaccount:portcullis-system:portcullis-controller-manager'',
        ''system:kube-controller-manager'', ''system:kube-scheduler''] || request.user.startsWith(''system:serviceaccount:kube-system:'')
        || ''system:unauthenticated'' in request.groups && has(request.nonResourceAttributes)
        && request.nonResourceAttributes.verb == ''get'' && (request.nonResourceAttributes.path
        in [''/healthz'', ''/livez'', ''/readyz'', ''/version'', ''/version/''] ||
        request.nonResourceAttributes.path.startsWith(''/healthz/'') || request.nonResourceAttributes.path.startsWith(''/livez/'')
        || request.nonResourceAttributes.path.startsWith(''/readyz/'')))'
    subjectAccessReviewVersion: v1
    timeout: 3s
    unauthorizedTTL: 30s
- name: rbac
  type: RBAC
kind: AuthorizationConfiguration
`
	if string(got) != want {
		t.Errorf("rendered AuthorizationConfiguration:\n%s\nwant:\n%s", got, want)
	}
	loadAndValidate(t, files.AuthorizationConfig)
}

func TestAuthorizationConfigurationOptions(t *testing.T) {
	type authorizer struct{ typ, name string }
	portcullis := authorizer{"Webhook", AuthorizerName}
	node := authorizer{"Node", "node"}
	rbac := authorizer{"RBAC", "rbac"}

	tests := []struct {
		name            string
		opts            Options
		wantAuthorizers []authorizer
		// The fields below are checked only when the webhook is present.
		wantWebhook    api.WebhookConfiguration
		wantConditions []string
		wantTokenTTL   string
	}{
		{
			name:            "no Portcullis authorizer: RBAC only",
			opts:            Options{},
			wantAuthorizers: []authorizer{rbac},
			wantTokenTTL:    "2m0s",
		},
		{
			name:            "no Portcullis authorizer, with nodes",
			opts:            Options{IncludeNodeAuthorizer: true},
			wantAuthorizers: []authorizer{node, rbac},
			wantTokenTTL:    "2m0s",
		},
		{
			name:            "defaults",
			opts:            Options{Authorization: &AuthorizationOptions{}},
			wantAuthorizers: []authorizer{portcullis, rbac},
			wantWebhook: api.WebhookConfiguration{
				Timeout: dur(3 * time.Second), FailurePolicy: "NoOpinion",
				AuthorizedTTL: dur(5 * time.Minute), CacheAuthorizedRequests: true,
				UnauthorizedTTL: dur(30 * time.Second), CacheUnauthorizedRequests: true,
			},
			wantConditions: []string{
				`!(request.user in ['system:serviceaccount:portcullis-system:portcullis-controller-manager', 'system:kube-controller-manager', 'system:kube-scheduler'] || request.user.startsWith('system:serviceaccount:kube-system:') || ` + healthProbesCEL + `)`,
			},
			wantTokenTTL: "2m0s",
		},
		{
			name: "everything set, with nodes",
			opts: Options{
				IncludeNodeAuthorizer: true,
				TokenCacheTTL:         10 * time.Second,
				Authorization: &AuthorizationOptions{
					Timeout:                          10 * time.Second,
					FailurePolicy:                    FailurePolicyDeny,
					AuthorizedTTL:                    time.Minute,
					UnauthorizedTTL:                  5 * time.Second,
					OperatorNamespace:                "security",
					OperatorServiceAccount:           "gate",
					ExcludedUsers:                    []string{"system:kube-scheduler", "system:serviceaccount:security:gate", "o'brien\\"},
					ExcludedServiceAccountNamespaces: []string{"kube-system", "monitoring"},
				},
			},
			wantAuthorizers: []authorizer{node, portcullis, rbac},
			wantWebhook: api.WebhookConfiguration{
				Timeout: dur(10 * time.Second), FailurePolicy: "Deny",
				AuthorizedTTL: dur(time.Minute), CacheAuthorizedRequests: true,
				UnauthorizedTTL: dur(5 * time.Second), CacheUnauthorizedRequests: true,
			},
			wantConditions: []string{
				`!(request.user in ['system:serviceaccount:security:gate', 'system:kube-controller-manager', 'system:kube-scheduler', 'o\'brien\\'] || request.user.startsWith('system:serviceaccount:kube-system:') || request.user.startsWith('system:serviceaccount:monitoring:') || ` + healthProbesCEL + `)`,
			},
			wantTokenTTL: "10s",
		},
		{
			name: "no caches",
			opts: Options{
				TokenCacheTTL: NoCache,
				Authorization: &AuthorizationOptions{AuthorizedTTL: NoCache, UnauthorizedTTL: -time.Second},
			},
			wantAuthorizers: []authorizer{portcullis, rbac},
			wantWebhook: api.WebhookConfiguration{
				Timeout: dur(3 * time.Second), FailurePolicy: "NoOpinion",
				// Upstream validation wants a positive TTL even with the cache off.
				AuthorizedTTL: dur(5 * time.Minute), CacheAuthorizedRequests: false,
				UnauthorizedTTL: dur(30 * time.Second), CacheUnauthorizedRequests: false,
			},
			wantConditions: []string{
				`!(request.user in ['system:serviceaccount:portcullis-system:portcullis-controller-manager', 'system:kube-controller-manager', 'system:kube-scheduler'] || request.user.startsWith('system:serviceaccount:kube-system:') || ` + healthProbesCEL + `)`,
			},
			wantTokenTTL: "0s",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.opts.URL = "https://127.0.0.1:9443"
			files, err := Write(dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			cfg := loadAndValidate(t, files.AuthorizationConfig)

			var got []authorizer
			for _, a := range cfg.Authorizers {
				got = append(got, authorizer{string(a.Type), a.Name})
			}
			if !reflect.DeepEqual(got, tc.wantAuthorizers) {
				t.Fatalf("authorizers = %v, want %v", got, tc.wantAuthorizers)
			}

			if flag := files.APIServerFlags()[2]; flag != "--authentication-token-webhook-cache-ttl="+tc.wantTokenTTL {
				t.Errorf("token cache flag = %s, want ttl %s", flag, tc.wantTokenTTL)
			}

			if tc.opts.Authorization == nil {
				if files.AuthorizationWebhookKubeconfig != "" {
					t.Errorf("AuthorizationWebhookKubeconfig = %q, want none", files.AuthorizationWebhookKubeconfig)
				}
				if _, err := os.Stat(filepath.Join(dir, AuthorizationWebhookKubeconfigFile)); !os.IsNotExist(err) {
					t.Errorf("authorization webhook kubeconfig written without an authorizer (stat: %v)", err)
				}
				return
			}
			var wh *api.WebhookConfiguration
			for _, a := range cfg.Authorizers {
				if a.Webhook != nil {
					wh = a.Webhook
				}
			}
			want := tc.wantWebhook
			want.SubjectAccessReviewVersion = "v1"
			want.MatchConditionSubjectAccessReviewVersion = "v1"
			want.ConnectionInfo = api.WebhookConnectionInfo{Type: "KubeConfigFile", KubeConfigFile: &files.AuthorizationWebhookKubeconfig}
			for _, c := range tc.wantConditions {
				want.MatchConditions = append(want.MatchConditions, api.WebhookMatchCondition{Expression: c})
			}
			if !reflect.DeepEqual(*wh, want) {
				t.Errorf("webhook:\n got %+v\nwant %+v", *wh, want)
			}
			if files.AuthorizationWebhookKubeconfig != filepath.Join(dir, AuthorizationWebhookKubeconfigFile) {
				t.Errorf("AuthorizationWebhookKubeconfig = %q", files.AuthorizationWebhookKubeconfig)
			}
		})
	}
}

// TestMatchConditionsEvaluate runs the rendered matchConditions through the
// API server's own CEL matcher: the webhook must be skipped for the operator
// and kube-system service accounts, and asked about everyone else.
func TestMatchConditionsEvaluate(t *testing.T) {
	dir := t.TempDir()
	files, err := Write(dir, Options{
		URL: "https://127.0.0.1:9443",
		Authorization: &AuthorizationOptions{
			ExcludedUsers:                    []string{"o'brien\\", "ünïcode\u200b"},
			ExcludedServiceAccountNamespaces: []string{"monitoring"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadAndValidate(t, files.AuthorizationConfig)
	matcher, errs := validation.ValidateAndCompileMatchConditions(authorizationcel.NewDefaultCompiler(), cfg.Authorizers[0].Webhook.MatchConditions)
	// Exclusions is the same wiring read in Go (the AccessPolicy checks
	// use it): it must agree with the rendered expression on every case.
	exclusions, err := AuthorizationOptions{
		ExcludedUsers:                    []string{"o'brien\\", "ünïcode\u200b"},
		ExcludedServiceAccountNamespaces: []string{"monitoring"},
	}.Exclusions()
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	for user, wantCalled := range map[string]bool{
		"alice": true,
		"system:serviceaccount:portcullis-system:portcullis-controller-manager": false,
		"system:serviceaccount:portcullis-system:default":                       true,
		"system:serviceaccount:kube-system:replicaset-controller":               false,
		"system:serviceaccount:kube-systemx:foo":                                true,
		"system:serviceaccount:monitoring:prometheus":                           false,
		"system:anonymous": true,
		"o'brien\\":        false,
		"o'brien":          true,
		"ünïcode\u200b":    false,
		"ünïcode":          true,
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Namespace: "default"},
		}}
		called, err := matcher.Eval(context.Background(), sar)
		if err != nil {
			t.Fatalf("%q: %v", user, err)
		}
		if called != wantCalled {
			t.Errorf("user %q: webhook called = %v, want %v", user, called, wantCalled)
		}
		if exclusions.User(user) == wantCalled {
			t.Errorf("user %q: Exclusions.User = %v, but the webhook is called = %v", user, exclusions.User(user), wantCalled)
		}
	}
	// Health probes, anonymous as kubelets make them, never reach the
	// webhook; other non-resource paths do.
	for path, wantCalled := range map[string]bool{
		"/healthz": false, "/healthz/etcd": false, "/livez": false, "/livez/ping": false,
		"/readyz": false, "/readyz/informer-sync": false, "/version": false, "/version/": false,
		"/metrics": true, "/healthzx": true, "/api": true, "/logs/": true,
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: "system:anonymous", Groups: []string{"system:unauthenticated"},
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "get", Path: path},
		}}
		called, err := matcher.Eval(context.Background(), sar)
		if err != nil {
			t.Fatalf("%q: %v", path, err)
		}
		if called != wantCalled {
			t.Errorf("path %q: webhook called = %v, want %v", path, called, wantCalled)
		}
		if HealthProbe(path) == wantCalled {
			t.Errorf("path %q: HealthProbe = %v, but the webhook is called = %v", path, HealthProbe(path), wantCalled)
		}
		// An authenticated user, or another verb, is always asked about:
		// AccessPolicies on these paths decide for them.
		for _, spec := range []authorizationv1.SubjectAccessReviewSpec{
			{User: "nora", Groups: []string{"system:authenticated"}, NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "get", Path: path}},
			{User: "system:anonymous", Groups: []string{"system:unauthenticated"}, NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "post", Path: path}},
		} {
			called, err := matcher.Eval(context.Background(), &authorizationv1.SubjectAccessReview{Spec: spec})
			if err != nil {
				t.Fatalf("%q: %v", path, err)
			}
			if !called {
				t.Errorf("%s %s %s: webhook not called", spec.User, spec.NonResourceAttributes.Verb, path)
			}
		}
	}
}

func TestConfigDir(t *testing.T) {
	dir := t.TempDir()
	files, err := Write(dir, Options{URL: "https://10.0.0.1", ConfigDir: "/etc/kubernetes/portcullis", Authorization: &AuthorizationOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	if files.Dir != dir {
		t.Errorf("Dir = %q, want %q", files.Dir, dir)
	}
	for _, p := range []string{files.TokenWebhookKubeconfig, files.AuthorizationWebhookKubeconfig, files.AuthorizationConfig} {
		if !strings.HasPrefix(p, "/etc/kubernetes/portcullis/") {
			t.Errorf("path %q is not under ConfigDir", p)
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.Base(p))); err != nil {
			t.Errorf("not written to dir: %v", err)
		}
	}
	body, err := os.ReadFile(filepath.Join(dir, AuthorizationConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "kubeConfigFile: /etc/kubernetes/portcullis/"+AuthorizationWebhookKubeconfigFile+"\n") {
		t.Errorf("kubeConfigFile does not point into ConfigDir:\n%s", body)
	}
}

func TestWriteRemovesStaleAuthorizationKubeconfig(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, Options{URL: "https://127.0.0.1:9443", Authorization: &AuthorizationOptions{}}); err != nil {
		t.Fatal(err)
	}
	files, err := Write(dir, Options{URL: "https://127.0.0.1:9443"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, AuthorizationWebhookKubeconfigFile)); !os.IsNotExist(err) {
		t.Errorf("stale authorization webhook kubeconfig kept (stat: %v)", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want the 2 files (no temporary leftovers)", len(entries))
	}
	loadAndValidate(t, files.AuthorizationConfig)
}

func TestInvalidOptions(t *testing.T) {
	many := make([]string, MaxMatchConditions)
	for i := range many {
		many[i] = "ns" + strconv.Itoa(i)
	}
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no URL", Options{}, "URL is required"},
		{"http URL", Options{URL: "http://127.0.0.1:9443"}, "must be https"},
		{"no host", Options{URL: "https:///x"}, "no host"},
		{"query", Options{URL: "https://h/?a=b"}, "query"},
		{"CA not PEM", Options{URL: "https://h", CABundle: []byte("nope")}, "no PEM certificate"},
		{"CA wrong block", Options{URL: "https://h", CABundle: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})}, "unexpected PEM block"},
		{"CA garbage DER", Options{URL: "https://h", CABundle: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})}, "certificate 1"},
		{"relative ConfigDir", Options{URL: "https://h", ConfigDir: "etc"}, "absolute"},
		{"timeout too long", Options{URL: "https://h", Authorization: &AuthorizationOptions{Timeout: time.Minute}}, "Timeout 1m0s"},
		{"negative timeout", Options{URL: "https://h", Authorization: &AuthorizationOptions{Timeout: -time.Second}}, "Timeout"},
		{"failure policy", Options{URL: "https://h", Authorization: &AuthorizationOptions{FailurePolicy: "Allow"}}, `FailurePolicy "Allow"`},
		{"operator namespace", Options{URL: "https://h", Authorization: &AuthorizationOptions{OperatorNamespace: "Bad_NS"}}, "OperatorNamespace"},
		{"operator service account", Options{URL: "https://h", Authorization: &AuthorizationOptions{OperatorServiceAccount: "a:b"}}, "OperatorServiceAccount"},
		{"empty excluded user", Options{URL: "https://h", Authorization: &AuthorizationOptions{ExcludedUsers: []string{""}}}, "empty username"},
		{"client certificate without key", Options{URL: "https://h", ClientCertificate: []byte("x")}, "give both or neither"},
		{"client key without certificate", Options{URL: "https://h", ClientKey: []byte("x")}, "give both or neither"},
		{"client certificate that does not parse", Options{URL: "https://h", ClientCertificate: []byte("x"), ClientKey: []byte("y")}, "ClientCertificate and ClientKey"},
		{"excluded namespace", Options{URL: "https://h", Authorization: &AuthorizationOptions{ExcludedServiceAccountNamespaces: []string{"a:b"}}}, "ExcludedServiceAccountNamespaces"},
		{"too many namespaces", Options{URL: "https://h", Authorization: &AuthorizationOptions{ExcludedServiceAccountNamespaces: many[:MaxMatchConditions-1]}}, "limit of 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Write(dir, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("invalid options wrote %d files", len(entries))
			}
		})
	}
}

func TestRenderRequiresConfigDir(t *testing.T) {
	if _, err := Render(Options{URL: "https://h"}); err == nil || !strings.Contains(err.Error(), "ConfigDir is required") {
		t.Fatalf("err = %v", err)
	}
	r, err := Render(Options{URL: "https://h", ConfigDir: "/etc/p"})
	if err != nil {
		t.Fatal(err)
	}
	if r.AuthorizationWebhookKubeconfig != nil {
		t.Error("authorization kubeconfig rendered without Authorization")
	}
	if r.Options.TokenCacheTTL != DefaultTokenCacheTTL {
		t.Errorf("defaulted TokenCacheTTL = %s", r.Options.TokenCacheTTL)
	}
}

func TestCELString(t *testing.T) {
	for in, want := range map[string]string{
		"alice":        `'alice'`,
		"o'brien":      `'o\'brien'`,
		`back\slash`:   `'back\\slash'`,
		"tab\there":    `'tab\u0009here'`,
		"zero\u200bw":  `'zero\u200Bw'`,
		"bad\xffutf8":  `'bad\uFFFDutf8'`,
		"ünïcode":      `'ünïcode'`,
		"\U000E0001x":  `'\U000E0001x'`,
		"":             `''`,
		"[a, 'b']\"\n": `'[a, \'b\']"\u000A'`,
	} {
		if got := celString(in); got != want {
			t.Errorf("celString(%q) = %s, want %s", in, got, want)
		}
	}
}

func dur(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

// The API server's client certificate goes into both webhook kubeconfigs.
func TestClientCertificateInKubeconfigs(t *testing.T) {
	var b certs.Bundle
	if _, err := b.Renew([]string{"127.0.0.1"}, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	cert, key, err := certs.IssueClient(b.CA, b.CAKey, "portcullis-apiserver", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := Write(dir, Options{URL: "https://h", CABundle: b.CA, ClientCertificate: cert, ClientKey: key, Authorization: &AuthorizationOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{files.TokenWebhookKubeconfig, filepath.Join(dir, AuthorizationWebhookKubeconfigFile)} {
		cfg, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		u := cfg.AuthInfos[kubeconfigUser]
		if u == nil || !bytes.Equal(u.ClientCertificateData, cert) || !bytes.Equal(u.ClientKeyData, key) {
			t.Errorf("%s: user %+v lacks the client certificate", path, u)
		}
	}
}

// The AdmissionConfiguration, read as kube-apiserver reads it, gives both
// webhook admission plugins a kubeconfig that resolves the client
// certificate for the webhook server's host alone: never for another
// webhook, which would then hold a credential for /authenticate.
func TestAdmissionCallersConfiguration(t *testing.T) {
	var b certs.Bundle
	if _, err := b.Renew([]string{"127.0.0.1"}, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	cert, key, err := certs.IssueClient(b.CA, b.CAKey, "portcullis-apiserver", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(Options{URL: "https://h", ConfigDir: "/x", AdmissionCallers: true}); err == nil || !strings.Contains(err.Error(), "AdmissionCallers") {
		t.Fatalf("AdmissionCallers without a client certificate: err = %v, want one naming AdmissionCallers", err)
	}
	for _, tc := range []struct {
		url      string
		resolves func(webhookutil.AuthenticationInfoResolver) (*rest.Config, error)
	}{
		{"https://portcullis-webhook.portcullis-system.svc:443", func(r webhookutil.AuthenticationInfoResolver) (*rest.Config, error) {
			return r.ClientConfigForService("portcullis-webhook", "portcullis-system", 443)
		}},
		{"https://portcullis-webhook.portcullis-system.svc", func(r webhookutil.AuthenticationInfoResolver) (*rest.Config, error) {
			return r.ClientConfigForService("portcullis-webhook", "portcullis-system", 443)
		}},
		{"https://127.0.0.1:34567", func(r webhookutil.AuthenticationInfoResolver) (*rest.Config, error) {
			return r.ClientConfigFor("127.0.0.1:34567")
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			dir := t.TempDir()
			files, err := Write(dir, Options{URL: tc.url, CABundle: b.CA, ClientCertificate: cert, ClientKey: key, AdmissionCallers: true})
			if err != nil {
				t.Fatal(err)
			}
			if want := "--admission-control-config-file=" + filepath.Join(dir, AdmissionConfigFile); !slices.Contains(files.APIServerFlags(), want) {
				t.Errorf("flags %v lack %s", files.APIServerFlags(), want)
			}
			provider, err := admission.ReadAdmissionConfiguration([]string{mutatingWebhookPlugin, validatingWebhookPlugin}, files.AdmissionConfig, admissionConfigScheme(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, plugin := range []string{mutatingWebhookPlugin, validatingWebhookPlugin} {
				r, err := provider.ConfigFor(plugin)
				if err != nil || r == nil {
					t.Fatalf("%s: no configuration (%v)", plugin, err)
				}
				wa, err := webhookconfig.LoadConfig(r)
				if err != nil {
					t.Fatalf("%s: %v", plugin, err)
				}
				resolver, err := webhookutil.NewDefaultAuthenticationInfoResolver(wa.KubeConfigFile)
				if err != nil {
					t.Fatal(err)
				}
				ours, err := tc.resolves(resolver)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ours.CertData, cert) || !bytes.Equal(ours.KeyData, key) {
					t.Errorf("%s: the webhook server's host does not get the client certificate", plugin)
				}
				for _, other := range []func() (*rest.Config, error){
					func() (*rest.Config, error) { return resolver.ClientConfigForService("other-webhook", "other", 443) },
					func() (*rest.Config, error) { return resolver.ClientConfigFor("webhook.example.com:443") },
				} {
					cfg, err := other()
					if err != nil {
						t.Fatal(err)
					}
					if len(cfg.CertData) > 0 || len(cfg.KeyData) > 0 {
						t.Errorf("%s: another webhook gets the client certificate", plugin)
					}
				}
			}
			// Off again: the admission files go, and so does the flag.
			files, err = Write(dir, Options{URL: tc.url, CABundle: b.CA, ClientCertificate: cert, ClientKey: key})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{AdmissionConfigFile, AdmissionWebhookKubeconfigFile} {
				if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
					t.Errorf("%s stays after AdmissionCallers is turned off (%v)", name, err)
				}
			}
			for _, f := range files.APIServerFlags() {
				if strings.HasPrefix(f, "--admission-control-config-file") {
					t.Errorf("flag %s without AdmissionCallers", f)
				}
			}
		})
	}
}

// admissionConfigScheme is the scheme kube-apiserver reads
// --admission-control-config-file with (k8s.io/apiserver/pkg/server/options).
func admissionConfigScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{api.AddToScheme, apiserverv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// healthProbesCEL is the guard of the health endpoints, as rendered.
const healthProbesCEL = "'system:unauthenticated' in request.groups && has(request.nonResourceAttributes) && request.nonResourceAttributes.verb == 'get' && (request.nonResourceAttributes.path in ['/healthz', '/livez', '/readyz', '/version', '/version/'] || " +
	"request.nonResourceAttributes.path.startsWith('/healthz/') || request.nonResourceAttributes.path.startsWith('/livez/') || request.nonResourceAttributes.path.startsWith('/readyz/'))"
