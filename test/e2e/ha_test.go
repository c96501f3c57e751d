package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// Two replicas against one API server: one leads, both answer webhooks from
// their own caches; stopping the leader moves the lease to the other, which
// then handles policy changes.
func TestHighAvailability(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	state := t.TempDir()
	// The operator's replicas are under test: no controller manager.
	ha, err := devenv.Start(ctx, devenv.Options{StateDir: state, WithoutControllerManager: true, DecisionLog: decisionLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ha.Stop() })
	second, err := ha.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop() })

	holder := func(ctx context.Context) string {
		var l coordinationv1.Lease
		if err := ha.Client.Get(ctx, client.ObjectKey{Namespace: ha.Namespace, Name: app.LeaderElectionID}, &l); err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	first := holder(ctx)
	if first == "" {
		t.Fatal("no leader")
	}

	// Both replicas answer a token created now, each from its own cache.
	if err := ha.Apply(ctx, []byte(`
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: ha-one}
spec: {user: {username: ha-one}, secretRef: {name: ha-one-token}}
`)); err != nil {
		t.Fatal(err)
	}
	tokenOne, err := ha.StaticToken(ctx, "ha-one", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(state, "webhook-certs", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]*devenv.Operator{"leader": ha.Primary(), "follower": second} {
		eventually(t, ctx, name+" authenticates ha-one", func(ctx context.Context) (bool, error) {
			u, err := tokenReview(ctx, caPEM, op.WebhookURL, tokenOne, ha.APIServerClient)
			return err == nil && u == "ha-one", err
		})
	}

	// Stop the leader: the lease moves within the lease time.
	if err := ha.Primary().Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "leadership moves to the other replica", func(ctx context.Context) (bool, error) {
		h := holder(ctx)
		return h != "" && h != first, nil
	})

	// A change made now is handled by the new leader: the token Secret is
	// generated and the status written, and the survivor serves it.
	if err := ha.Apply(ctx, []byte(`
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: ha-two}
spec: {user: {username: ha-two}, secretRef: {name: ha-two-token}}
`)); err != nil {
		t.Fatal(err)
	}
	tokenTwo, err := ha.StaticToken(ctx, "ha-two", time.Minute)
	if err != nil {
		t.Fatalf("the new leader did not handle a change: %v", err)
	}
	eventually(t, ctx, "the survivor authenticates ha-two", func(ctx context.Context) (bool, error) {
		u, err := tokenReview(ctx, caPEM, second.WebhookURL, tokenTwo, ha.APIServerClient)
		return err == nil && u == "ha-two", err
	})
}

// tokenReview asks one replica's /authenticate directly, as the API server
// would: verifying its certificate with the CA and presenting client (the
// API server's certificate, or none).
func tokenReview(ctx context.Context, caPEM []byte, base, token string, client ...tls.Certificate) (string, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, Certificates: client}}}
	body, _ := json.Marshal(authenticationv1.TokenReview{
		TypeMeta: metav1TypeMeta("authentication.k8s.io/v1", "TokenReview"),
		Spec:     authenticationv1.TokenReviewSpec{Token: token},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/authenticate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST /authenticate: %s", resp.Status)
	}
	var tr authenticationv1.TokenReview
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		return "", err
	}
	return tr.Status.User.Username, nil
}
