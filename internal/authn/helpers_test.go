package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/authn/jwks"
)

// testNow is the instant every test clock reads.
var testNow = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

const (
	testIssuer   = "https://idp.example.com"
	otherIssuer  = "https://other.example.com"
	testAudience = "kubernetes"
)

// testKey is a private key with the kid and alg its tokens are signed with.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// testKeys are generated once per test binary: RSA generation is slow,
// the more so under -race.
var testKeys = sync.OnceValue(func() map[string]testKey {
	rsaKey := func() crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	ecKey := func() crypto.Signer {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
		{"ec-a", jose.ES256, ecKey()},
		{"ec-b", jose.ES256, ecKey()},
		{"ed-a", jose.EdDSA, edKey()},
	} {
		m[k.kid] = k
	}
	return m
})

func key(kid string) testKey {
	k, ok := testKeys()[kid]
	if !ok {
		panic("no test key " + kid)
	}
	return k
}

// keySet is a static key set holding the public keys of kids, each
// declaring its algorithm.
func keySet(tb testing.TB, kids ...string) *jwks.StaticKeySet {
	tb.Helper()
	var set jose.JSONWebKeySet
	for _, kid := range kids {
		k := key(kid)
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	doc, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	ks, err := jwks.NewStatic(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

// claimSet is a token's claims; a nil value deletes the claim.
type claimSet map[string]any

// baseClaims are valid claims for testIssuer at testNow.
func baseClaims() claimSet {
	return claimSet{
		"iss":    testIssuer,
		"aud":    testAudience,
		"sub":    "bob",
		"groups": []string{"dev", "ops"},
		"iat":    testNow.Add(-time.Minute).Unix(),
		"exp":    testNow.Add(time.Hour).Unix(),
	}
}

// with returns a copy of c with changes applied; a nil value deletes.
func (c claimSet) with(changes claimSet) claimSet {
	out := claimSet{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func (c claimSet) json(tb testing.TB) string {
	tb.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// signRaw signs payload with priv as a compact JWS with alg and, when not
// empty, kid in its protected header.
func signRaw(tb testing.TB, priv any, alg jose.SignatureAlgorithm, kid, payload string) string {
	tb.Helper()
	token, err := signCompact(priv, alg, kid, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// signCompact is signRaw for goroutines that may not call tb.Fatal.
func signCompact(priv any, alg jose.SignatureAlgorithm, kid, payload string) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, opts)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign([]byte(payload))
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// sign signs c with the key kid, with its alg and kid in the header.
func sign(tb testing.TB, kid string, c claimSet) string {
	tb.Helper()
	k := key(kid)
	return signRaw(tb, k.priv, k.alg, k.kid, c.json(tb))
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// replacePayload swaps a compact JWS's payload, keeping its header and
// signature: a forgery that must fail signature verification.
func replacePayload(tb testing.TB, token, payload string) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a compact JWS: %q", token)
	}
	parts[1] = b64(payload)
	return strings.Join(parts, ".")
}

func ptr[T any](v T) *T { return &v }

// baseSpec is a JWTAuthenticatorSpec for issuer: username from sub with
// "corp:", groups from groups with "corp:", uid from sub.
func baseSpec(issuer string) *authnv1alpha1.JWTAuthenticatorSpec {
	return &authnv1alpha1.JWTAuthenticatorSpec{
		Issuer: authnv1alpha1.JWTIssuer{URL: issuer, Audiences: []string{testAudience}},
		JWKS:   authnv1alpha1.JWKSSource{Inline: `{"keys":[]}`},
		ClaimMappings: authnv1alpha1.ClaimMappings{
			Username: authnv1alpha1.PrefixedClaimOrExpression{Claim: "sub", Prefix: ptr("corp:")},
			Groups:   authnv1alpha1.PrefixedClaimOrExpression{Claim: "groups", Prefix: ptr("corp:")},
			UID:      authnv1alpha1.ClaimOrExpression{Claim: "sub"},
		},
	}
}

// celCompiler is the API server's CEL compiler; building its environment
// is costly, so it is shared.
var celCompiler = sync.OnceValue(authenticationcel.NewDefaultCompiler)

func compile(tb testing.TB, name string, spec *authnv1alpha1.JWTAuthenticatorSpec, keys KeySet, now func() time.Time) *JWTAuthenticator {
	tb.Helper()
	a, err := CompileJWT(celCompiler(), name, spec, keys, now, nil)
	if err != nil {
		tb.Fatalf("CompileJWT(%s): %v", name, err)
	}
	return a
}

// readyEngine returns a ready engine at testNow, and its registry, after
// setup has filled the registry.
func readyEngine(setup func(r *Registry)) (*Engine, *Registry) {
	e := NewEngine(fixedClock(testNow))
	r := NewRegistry(e)
	if setup != nil {
		setup(r)
	}
	r.MarkReady()
	return e, r
}

// mustAuth calls AuthenticateToken and Authenticate, checks that they agree
// and that AuthenticateToken never returns an error, and returns the
// decision.
func mustAuth(tb testing.TB, e *Engine, token string) (*authenticator.Response, Decision, bool) {
	tb.Helper()
	ctx := context.Background()
	resp, ok, err := e.AuthenticateToken(ctx, token)
	if err != nil {
		tb.Fatalf("AuthenticateToken returned an error (errors are log-only): %v", err)
	}
	resp2, d, ok2 := e.Authenticate(ctx, token)
	if ok != ok2 {
		tb.Fatalf("AuthenticateToken ok=%v, Authenticate ok=%v", ok, ok2)
	}
	if ok != (resp != nil) || ok2 != (resp2 != nil) {
		tb.Fatalf("response %v / %v does not agree with ok=%v", resp, resp2, ok)
	}
	if !ok && d.Reason == "" {
		tb.Fatalf("a refusal has no reason for the log: %+v", d)
	}
	return resp, d, ok
}
