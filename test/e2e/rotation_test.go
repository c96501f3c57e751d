package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

// trust is how the API server verifies the webhook server for one of its
// callers: the CA it was given and the host it dials.
type trust struct {
	caller string
	ca     []byte
	host   string // host[:port] of the URL
}

// publishedTrust is what the API server is told to trust: the caBundle and
// URL of every webhook of the admission configurations, and the CA and
// server of the published token and authorization kubeconfigs.
func publishedTrust(t *testing.T, ctx context.Context) []trust {
	t.Helper()
	var out []trust
	add := func(caller, rawURL string, ca []byte) {
		u, err := url.Parse(rawURL)
		if err != nil || u.Host == "" || len(ca) == 0 {
			t.Fatalf("%s: URL %q (%v), %d bytes of CA", caller, rawURL, err, len(ca))
		}
		out = append(out, trust{caller: caller, ca: ca, host: u.Host})
	}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := env.Client.Get(ctx, clientKey(app.MutatingWebhookConfiguration), &m); err != nil {
		t.Fatal(err)
	}
	for _, w := range m.Webhooks {
		add("mutating webhook "+w.Name, ptrString(w.ClientConfig.URL), w.ClientConfig.CABundle)
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := env.Client.Get(ctx, clientKey(app.ValidatingWebhookConfiguration), &v); err != nil {
		t.Fatal(err)
	}
	for _, w := range v.Webhooks {
		add("validating webhook "+w.Name, ptrString(w.ClientConfig.URL), w.ClientConfig.CABundle)
	}
	var wiring corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: app.WiringSecret}, &wiring); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{apiserverconfig.TokenWebhookKubeconfigFile, apiserverconfig.AuthorizationWebhookKubeconfigFile} {
		cfg, err := clientcmd.Load(wiring.Data[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := cfg.Contexts[cfg.CurrentContext]
		if c == nil || cfg.Clusters[c.Cluster] == nil {
			t.Fatalf("%s: no cluster for its current context %q", name, cfg.CurrentContext)
		}
		add(name, cfg.Clusters[c.Cluster].Server, cfg.Clusters[c.Cluster].CertificateAuthorityData)
	}
	if len(m.Webhooks) == 0 || len(v.Webhooks) == 0 {
		t.Fatalf("%d mutating and %d validating webhooks, want both", len(m.Webhooks), len(v.Webhooks))
	}
	return out
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// servedCertificate dials the webhook server on a new connection and
// verifies what it presents as the API server would for each of its
// callers: chained to that caller's CA, valid for the host it dials.
func servedCertificate(trusted []trust) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	for _, tr := range trusted {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(tr.ca) {
			return nil, fmt.Errorf("%s: no certificate in its CA", tr.caller)
		}
		u := url.URL{Host: tr.host}
		conn, err := tls.Dial("tcp", tr.host, &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tr.caller, err)
		}
		got := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if leaf != nil && !leaf.Equal(got) {
			return nil, fmt.Errorf("%s: served serial %s, another caller's handshake %s", tr.caller, got.SerialNumber, leaf.SerialNumber)
		}
		leaf = got
	}
	return leaf, nil
}

// A forced certificate rotation while requests flow through all four
// phases fails no request: the serving certificate changes under the same
// CA, for the same host, and the webhook server reloads it without a
// restart; the API server, made to dial again, calls every phase over
// the new certificate.
func TestCertificateRotationFailsNoRequest(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	// Both admission policies are ones the API server could run itself:
	// on the webhook, all four phases are calls to Portcullis.
	webhookExecution(t, ctx)
	ensureNamespace(t, ctx, admissionNS)
	// The API server keeps a token it authenticated for 10s whatever the
	// webhook's cache TTL: the token of rota-cm-after is first sent once
	// the API server dials again, so that authentication is called then.
	cs, _ := user(t, ctx, "rota-cm")
	csAfter, _ := user(t, ctx, "rota-cm-after")
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-rota-cm}
spec:
  effect: Allow
  subjects: [{kind: User, name: rota-cm}, {kind: User, name: rota-cm-after}]
  rules: [{namespaces: [`+admissionNS+`], apiGroups: [""], resources: [configmaps], verbs: [create, delete]}]
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e2e-rota-mutate}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  mutations: [{setLabels: {rotation: seen}}]
`)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-rota-validate}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  validations: [{expression: "object.metadata.labels.rotation == 'seen'", message: "mutated first"}]
`)
	waitExecution(t, ctx, &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-rota-mutate"}}, admissionv1alpha1.ExecutionWebhook)
	waitExecution(t, ctx, &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-rota-validate"}}, admissionv1alpha1.ExecutionWebhook)
	waitWebhookRules(t, ctx, true, "configmaps")
	waitWebhookRules(t, ctx, false, "configmaps")
	trusted := publishedTrust(t, ctx)
	before, err := servedCertificate(trusted)
	if err != nil {
		t.Fatalf("before the rotation: %v", err)
	}

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	// between is held by the client for each create+delete, so that the
	// test can cut the API server's connections, and change its user,
	// between two of them.
	var between sync.Mutex
	as := cs
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			between.Lock()
			name := fmt.Sprintf("rota-%d", i)
			cm, err := as.CoreV1().ConfigMaps(admissionNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			if err == nil && cm.Labels["rotation"] != "seen" {
				err = fmt.Errorf("%s stored with labels %v: not mutated", name, cm.Labels)
			}
			if err == nil {
				err = as.CoreV1().ConfigMaps(admissionNS).Delete(ctx, name, metav1.DeleteOptions{})
			}
			between.Unlock()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			} else {
				ok.Add(1)
			}
		}
	}()
	time.Sleep(2 * time.Second)
	b := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, "portcullis.io/rotate-certificate", time.Now().Format(time.RFC3339Nano))
	if err := env.Client.Patch(ctx, b, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
	// Every check dials anew: the certificate presented now, verified as
	// each caller of the API server verifies it with what it was told to
	// trust before the rotation.
	eventually(t, ctx, "the webhook server presents a new certificate the API server trusts", func(context.Context) (bool, error) {
		c, err := servedCertificate(trusted)
		if err != nil {
			return false, err
		}
		return c.SerialNumber.Cmp(before.SerialNumber) != 0, fmt.Errorf("still serial %s", c.SerialNumber)
	})
	// The API server's kept-alive connections carry the old handshake:
	// cut them between two requests, so its next calls verify the new
	// certificate.
	between.Lock()
	cut := env.CutWebhookConnections()
	as = csAfter
	// Long enough for its transports to see the connections closed
	// rather than write a call into one.
	time.Sleep(200 * time.Millisecond)
	mark, okBefore := len(operatorLog.String()), ok.Load()
	between.Unlock()
	if cut == 0 {
		t.Error("the API server held no connection to the webhooks to cut")
	}
	time.Sleep(3 * time.Second) // requests keep flowing on the new certificate
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || ok.Load() < 10 {
		t.Fatalf("%d requests ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	after := ok.Load() - okBefore
	phases := decisionsFor(operatorLog.String()[mark:], "rota-cm-after", "")
	if want := []string{"authenticate", "authorize", "mutate", "validate"}; !containsInOrder(phases, want) {
		t.Errorf("decisions for rota-cm-after once the API server dialled again: %v, want %v in order (%d pairs)", phases, want, after)
	}
	t.Logf("%d create+delete pairs through all four phases during the rotation, %d after cutting %d connections; none failed", ok.Load(), after, cut)

	// What is published still carries the CA that signs the new
	// certificate.
	now := publishedTrust(t, ctx)
	if len(now) != len(trusted) {
		t.Fatalf("%d callers published after the rotation, %d before", len(now), len(trusted))
	}
	for i := range now {
		if !bytes.Equal(now[i].ca, trusted[i].ca) || now[i].host != trusted[i].host {
			t.Errorf("%s: the published CA or host changed in the rotation", now[i].caller)
		}
	}
}
