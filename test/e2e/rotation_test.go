package e2e

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// servedSerial is the serial number of the certificate the webhook server
// presents now.
func servedSerial(t *testing.T) string {
	t.Helper()
	u, _ := url.Parse(env.WebhookURL)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true}) // #nosec: only reading the presented certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// A forced certificate rotation while requests flow through all four
// phases fails no request: the serving certificate changes under the same
// CA and the webhook server reloads it without a restart.
func TestCertificateRotationFailsNoRequest(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	ensureNamespace(t, ctx, admissionNS)
	cs, _ := user(t, ctx, "rota-cm")
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-rota-cm}
spec:
  effect: Allow
  subjects: [{kind: User, name: rota-cm}]
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
	waitWebhookRules(t, ctx, false, "configmaps")
	before := servedSerial(t)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
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
			name := fmt.Sprintf("rota-%d", i)
			_, err := cs.CoreV1().ConfigMaps(admissionNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			if err == nil {
				err = cs.CoreV1().ConfigMaps(admissionNS).Delete(ctx, name, metav1.DeleteOptions{})
			}
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
	eventually(t, ctx, "the webhook server presents a new certificate", func(context.Context) (bool, error) {
		return servedSerial(t) != before, nil
	})
	time.Sleep(3 * time.Second) // requests keep flowing on the new certificate
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || ok.Load() < 10 {
		t.Fatalf("%d requests ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	t.Logf("%d create+delete pairs through all four phases during the rotation, none failed", ok.Load())

	// The API-server wiring published in the operator's namespace carries
	// the CA that signs the new certificate.
	var cm corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: app.WiringSecret}, &cm); err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: devenv.CertSecret}, &secret); err != nil {
		t.Fatal(err)
	}
	caData := base64.StdEncoding.EncodeToString(secret.Data["ca.crt"])
	if !strings.Contains(string(cm.Data[apiserverconfig.TokenWebhookKubeconfigFile]), caData) || len(cm.Data[apiserverconfig.AuthorizationConfigFile]) == 0 {
		t.Fatal("the published wiring does not carry the current CA")
	}
}
