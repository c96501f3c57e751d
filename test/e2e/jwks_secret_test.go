package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
)

// An EdDSA key set kept in a Secret: tokens verify, and replacing the
// Secret's key set rotates the key within seconds.
func TestJWKSFromSecretWithEdDSA(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	const iss = "https://ed.e2e.portcullis.test"
	newKey := func(kid string) (ed25519.PrivateKey, string) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: string(jose.EdDSA), Use: "sig"}}})
		return priv, string(b)
	}
	sign := func(priv ed25519.PrivateKey, kid, sub string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		payload, _ := json.Marshal(map[string]any{"iss": iss, "aud": []string{"kubernetes", "other"}, "sub": sub, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
	k1, set1 := newKey("ed-1")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: "e2e-ed-jwks"},
		StringData: map[string]string{"jwks.json": set1},
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, secret) })
	apply(t, ctx, `
apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-ed}
spec:
  issuer: {url: "`+iss+`", audiences: [kubernetes]}
  jwks: {secretRef: {name: e2e-ed-jwks, key: jwks.json}}
  claimMappings: {username: {expression: "'ed:' + claims.sub"}}
`)
	ja := &authnv1alpha1.JWTAuthenticator{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ed"}}
	t.Cleanup(func() { deleteObj(t, ja) })
	waitCondition(t, ctx, ja, metav1.ConditionTrue, authnv1alpha1.ReasonLoaded)
	if ja.Status.Keys != 1 {
		t.Fatalf("status.keys = %d, want 1", ja.Status.Keys)
	}

	old := sign(k1, "ed-1", "erin")
	eventually(t, ctx, "an EdDSA token authenticates", func(ctx context.Context) (bool, error) {
		u, err := whoami(ctx, t, old)
		return err == nil && u.Username == "ed:erin", err
	})

	// Rotate: the Secret now holds only a new key.
	k2, set2 := newKey("ed-2")
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	secret.Data = map[string][]byte{"jwks.json": []byte(set2)}
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	fresh := sign(k2, "ed-2", "erin")
	eventually(t, ctx, "a token signed with the new key authenticates", func(ctx context.Context) (bool, error) {
		u, err := whoami(ctx, t, fresh)
		return err == nil && u.Username == "ed:erin", err
	})
	expectUnauthorized(t, ctx, "a token signed with the removed key", old)

	// A broken key set is reported in status and never half-loaded.
	secret.Data = map[string][]byte{"jwks.json": []byte(`{"keys":[{"kty":"OKP"}]}`)}
	if err := env.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	c := waitCondition(t, ctx, ja, metav1.ConditionFalse, authnv1alpha1.ReasonJWKSError)
	if c.Message == "" {
		t.Fatal("no message for a broken key set")
	}
	expectUnauthorized(t, ctx, "a token while the key set is broken", fresh)
}
