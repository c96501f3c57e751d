package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/certs"
)

// Every webhook path answers the API server alone: a caller without its
// client certificate, or with one for another name, gets 401, one with a
// certificate from another CA fails the TLS handshake, while the API
// server (every other test: its admission calls present the certificate
// through the rendered AdmissionConfiguration) and a caller with its
// certificate are answered.
func TestOnlyTheAPIServerMayCallAuthnAndAuthz(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	_, token := user(t, ctx, "caller-check")
	ca, err := os.ReadFile(filepath.Join(env.CertDir(), certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	other := certs.Bundle{}
	if _, err := other.Renew([]string{"127.0.0.1"}, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	strangerCert, strangerKey, err := certs.IssueClient(other.CA, other.CAKey, "portcullis-apiserver", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := tls.X509KeyPair(strangerCert, strangerKey)
	b := certs.ReadDir(env.CertDir())
	wrongNameCert, wrongNameKey, err := certs.IssueClient(b.CA, b.CAKey, "someone-else", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrongName, _ := tls.X509KeyPair(wrongNameCert, wrongNameKey)

	post := func(path, body string, client ...tls.Certificate) int {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, Certificates: client}}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.WebhookURL+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			// A certificate that does not verify fails the handshake.
			t.Logf("POST %s: %v", path, err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tr := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + token + `"}}`
	sar := `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"caller-check","resourceAttributes":{"verb":"get","resource":"pods","namespace":"default"}}}`
	ar := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},"namespace":"default","name":"x","operation":"CREATE","userInfo":{"username":"caller-check"},"object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"}}}}`
	for _, tc := range []struct {
		name   string
		client []tls.Certificate
		want   int
	}{
		{"no client certificate", nil, http.StatusUnauthorized},
		{"a certificate from another CA: the handshake fails", []tls.Certificate{stranger}, 0},
		{"a certificate for another name", []tls.Certificate{wrongName}, http.StatusUnauthorized},
		{"the API server's certificate", []tls.Certificate{env.APIServerClient}, http.StatusOK},
	} {
		for path, body := range map[string]string{"/authenticate": tr, "/authorize": sar, "/mutate": ar, "/validate": ar, "/validate-portcullis": ar} {
			if got := post(path, body, tc.client...); got != tc.want {
				t.Errorf("%s, POST %s: %d, want %d", tc.name, path, got, tc.want)
			}
		}
	}
}

// The wiring the leader publishes (the Secret an admin copies to the
// control-plane nodes) carries the API server's client certificate: its
// token webhook kubeconfig is answered by /authenticate, and its admission
// kubeconfig gives the certificate to the webhook server's host.
func TestPublishedWiringCarriesTheClientCertificate(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	_, token := user(t, ctx, "published-wiring")
	var wiring corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: app.WiringSecret}, &wiring); err != nil {
		t.Fatal(err)
	}
	b := certs.ReadDir(env.CertDir())
	valid := func(name, user string, auth *clientcmdapi.AuthInfo) {
		if auth == nil {
			t.Errorf("%s: no user %q", name, user)
		} else if !certs.ClientValid(b.CA, auth.ClientCertificateData, auth.ClientKeyData, app.APIServerClientName, time.Now()) {
			t.Errorf("%s: user %q holds no valid client certificate of %s", name, user, app.APIServerClientName)
		}
	}
	// The token and authorization webhooks' kubeconfigs: the user of
	// their current context, which the API server uses.
	for _, name := range []string{apiserverconfig.TokenWebhookKubeconfigFile, apiserverconfig.AuthorizationWebhookKubeconfigFile} {
		cfg, err := clientcmd.Load(wiring.Data[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := cfg.Contexts[cfg.CurrentContext]
		if c == nil {
			t.Fatalf("%s: no current context %q", name, cfg.CurrentContext)
		}
		valid(name, c.AuthInfo, cfg.AuthInfos[c.AuthInfo])
	}
	// The admission kubeconfig: the webhook admission plugins pick the
	// user named by the host[:port] of the webhook they call, so its one
	// user is named by the host of every webhook the operator registers.
	cfg, err := clientcmd.Load(wiring.Data[apiserverconfig.AdmissionWebhookKubeconfigFile])
	if err != nil {
		t.Fatalf("%s: %v", apiserverconfig.AdmissionWebhookKubeconfigFile, err)
	}
	if len(cfg.AuthInfos) != 1 {
		t.Errorf("%s: users %v, want one, for the webhook host", apiserverconfig.AdmissionWebhookKubeconfigFile, slices.Sorted(maps.Keys(cfg.AuthInfos)))
	}
	// The policies' configurations exist while a policy is on the
	// webhook; the one for our own kinds always does.
	var urls []string
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := env.Client.Get(ctx, client.ObjectKey{Name: app.MutatingWebhookConfiguration}, &m); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	for _, w := range m.Webhooks {
		urls = append(urls, ptrString(w.ClientConfig.URL))
	}
	for _, name := range []string{app.ValidatingWebhookConfiguration, app.OwnKindsWebhookConfiguration} {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &v); err != nil && (name == app.OwnKindsWebhookConfiguration || !apierrors.IsNotFound(err)) {
			t.Fatal(err)
		}
		for _, w := range v.Webhooks {
			urls = append(urls, ptrString(w.ClientConfig.URL))
		}
	}
	if len(urls) == 0 {
		t.Fatal("no admission webhooks registered")
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			t.Errorf("webhook URL %q: %v", raw, err)
			continue
		}
		valid(apiserverconfig.AdmissionWebhookKubeconfigFile, u.Host, cfg.AuthInfos[u.Host])
	}
	// Used as the API server uses it.
	restCfg, err := clientcmd.RESTConfigFromKubeConfig(wiring.Data[apiserverconfig.TokenWebhookKubeconfigFile])
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, restCfg.Host, strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"`+token+`"}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var review authenticationv1.TokenReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s with the published kubeconfig: %d (%v)", restCfg.Host, resp.StatusCode, err)
	}
	if !review.Status.Authenticated || review.Status.User.Username != "published-wiring" {
		t.Fatalf("the published kubeconfig's review: %+v", review.Status)
	}
	if _, ok := wiring.Data[apiserverconfig.AdmissionConfigFile]; !ok {
		t.Error("the published wiring has no AdmissionConfiguration")
	}
}
