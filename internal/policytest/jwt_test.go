package policytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// A JWT through a JWTAuthenticator whose key set is inline: the claims
// mapped to the user, the audience checked against the review's, a
// token signed by another key not authenticated.
func TestJWTCases(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: "k1", Algorithm: string(jose.ES256), Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key *ecdsa.PrivateKey, aud string) string {
		t.Helper()
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		payload, _ := json.Marshal(map[string]any{"iss": "https://idp.example.com", "aud": aud, "sub": "alice", "groups": []string{"ops"},
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	authenticator := fmt.Sprintf(`apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: corp}
spec:
  issuer: {url: "https://idp.example.com", audiences: [kubernetes]}
  jwks: {inline: '%s'}
  claimMappings:
    username: {claim: sub, prefix: "corp:"}
    groups: {claim: groups, prefix: "corp:"}
`, set)
	dir := write(t, map[string]string{
		"jwt.yaml": authenticator,
		"test.yaml": fmt.Sprintf(`apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: jwt}
apiAudiences: [kubernetes]
cases:
- name: a token of the issuer
  authentication: {token: %q}
  expect: {authenticated: true, user: {username: "corp:alice", groups: ["corp:ops"]}}
- name: for another audience
  authentication: {token: %q}
  expect: {authenticated: false}
- name: signed by another key
  authentication: {token: %q}
  expect: {authenticated: false}
`, sign(priv, "kubernetes"), sign(priv, "vault"), sign(other, "kubernetes")),
	})
	for _, r := range runDir(t, dir) {
		if !r.Passed {
			t.Errorf("%s: got %s: %v", r.Case, r.Got, r.Failures)
		}
	}
}
