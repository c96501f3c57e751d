package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// keySetAPI is go-oidc's KeySet, the interface the API server's OIDC
// authenticator takes as Options.KeySet. go-oidc is not a direct dependency
// of this module, so the assertion is made against a copy.
type keySetAPI interface {
	VerifySignature(ctx context.Context, jwt string) (payload []byte, err error)
}

var (
	_ keySetAPI = (*StaticKeySet)(nil)
	_ keySetAPI = (*RemoteKeySet)(nil)
)

// testKey is a private key with the kid and alg its tokens are signed with.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// keys are generated once per test binary: RSA generation is slow.
var keys = sync.OnceValue(func() map[string]testKey {
	rsaKey := func() crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	ecKey := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	edKey := func() crypto.Signer {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	m := map[string]testKey{}
	for _, k := range []testKey{
		{"rsa-a", jose.RS256, rsaKey()},
		{"rsa-b", jose.RS256, rsaKey()},
		{"ec-a", jose.ES256, ecKey(elliptic.P256())},
		{"ec-b", jose.ES256, ecKey(elliptic.P256())},
		{"ec384", jose.ES384, ecKey(elliptic.P384())},
		{"ed-a", jose.EdDSA, edKey()},
		{"ed-b", jose.EdDSA, edKey()},
	} {
		m[k.kid] = k
	}
	return m
})

func key(name string) testKey { return keys()[name] }

// jwk is k's public key as a JWK that declares k's algorithm.
func (k testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// doc is a JWKS document holding jwks.
func doc(tb testing.TB, jwks ...jose.JSONWebKey) []byte {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: jwks})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// docOf is a JWKS document holding the public keys of ks.
func docOf(tb testing.TB, ks ...testKey) []byte {
	tb.Helper()
	jwks := make([]jose.JSONWebKey, len(ks))
	for i, k := range ks {
		jwks[i] = k.jwk()
	}
	return doc(tb, jwks...)
}

const testClaims = `{"iss":"https://idp.example.com","sub":"bob","aud":"kubernetes"}`

// sign signs payload with priv as a compact JWS with alg and, when not
// empty, kid in its protected header.
func sign(tb testing.TB, priv any, alg jose.SignatureAlgorithm, kid, payload string) string {
	tb.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := signer.Sign([]byte(payload))
	if err != nil {
		tb.Fatal(err)
	}
	token, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// token is a token signed by k with its own alg and kid.
func (k testKey) token(tb testing.TB) string {
	tb.Helper()
	return sign(tb, k.priv, k.alg, k.kid, testClaims)
}
