package jwks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestParseJWKS(t *testing.T) {
	rsaA, ecA, edA := key("rsa-a"), key("ec-a"), key("ed-a")

	noAlg := rsaA.jwk()
	noAlg.Algorithm = ""
	encKey := key("rsa-b").jwk()
	encKey.Use, encKey.Algorithm = "enc", "RSA-OAEP"
	withAlg := func(k testKey, alg string) jose.JSONWebKey {
		j := k.jwk()
		j.Algorithm = alg
		return j
	}
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	many := make([]jose.JSONWebKey, MaxKeys+1)
	for i := range many {
		many[i] = edA.jwk()
	}
	rsaJSON := mustJSON(t, rsaA.jwk())

	tests := []struct {
		name     string
		data     string
		wantKIDs []string
		wantErr  string
	}{
		{name: "RSA, EC and Ed25519", data: string(docOf(t, rsaA, ecA, edA)), wantKIDs: []string{"rsa-a", "ec-a", "ed-a"}},
		{name: "key without alg", data: string(doc(t, noAlg)), wantKIDs: []string{"rsa-a"}},
		{name: "encryption key skipped", data: string(doc(t, encKey, ecA.jwk())), wantKIDs: []string{"ec-a"}},
		{name: "P-384 key", data: string(docOf(t, key("ec384"))), wantKIDs: []string{"ec384"}},

		{name: "invalid JSON", data: `{"keys": [`, wantErr: "not valid JSON"},
		{name: "not JSON at all", data: `hello`, wantErr: "not valid JSON"},
		{name: "empty document", data: ``, wantErr: "not valid JSON"},
		{name: "array", data: `[]`, wantErr: "not a key set"},
		{name: "keys not an array", data: `{"keys": {}}`, wantErr: "not a key set"},
		{name: "null", data: `null`, wantErr: `no "keys" member`},
		{name: "no keys member", data: `{}`, wantErr: `no "keys" member`},
		{name: "empty key set", data: `{"keys": []}`, wantErr: "key set is empty"},
		{name: "single key, not a set", data: rsaJSON, wantErr: "single key, not a key set"},
		{name: "only encryption keys", data: string(doc(t, encKey)), wantErr: "no signing key (1 keys skipped"},
		{name: "too many keys", data: string(doc(t, many...)), wantErr: "more than the 100 allowed"},
		{name: "too large", data: `{"keys": []}` + strings.Repeat(" ", MaxDocumentBytes), wantErr: "larger than 1048576 bytes"},
		{name: "key not an object", data: `{"keys": ["x"]}`, wantErr: "key 0: not a JSON object"},

		{name: "private RSA key", data: string(doc(t, jose.JSONWebKey{Key: rsaA.priv, KeyID: "leak"})), wantErr: `key 0 (kid "leak"): contains private key material (member "d")`},
		{name: "private EC key", data: string(doc(t, ecA.jwk(), jose.JSONWebKey{Key: ecA.priv})), wantErr: `key 1: contains private key material`},
		{name: "private Ed25519 key", data: string(doc(t, jose.JSONWebKey{Key: edA.priv})), wantErr: `private key material`},
		{name: "private encryption key", data: `{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","d":"AQAB"}]}`, wantErr: "private key material"},
		{name: "symmetric key", data: `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`, wantErr: "symmetric keys"},
		{name: "unknown key type", data: `{"keys":[{"kty":"XYZ","kid":"x"}]}`, wantErr: `key 0 (kid "x"): unsupported key type "XYZ"`},
		{name: "X25519 key", data: `{"keys":[{"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}]}`, wantErr: `unsupported OKP curve "X25519"`},
		{name: "missing kty", data: `{"keys":[{"kid":"x"}]}`, wantErr: `missing "kty"`},
		{name: "HMAC alg on a key", data: string(doc(t, withAlg(rsaA, "HS256"))), wantErr: `unsupported algorithm "HS256"`},
		{name: "EC alg on an RSA key", data: string(doc(t, withAlg(rsaA, "ES256"))), wantErr: `algorithm "ES256" does not fit a RSA key`},
		{name: "ES384 on a P-256 key", data: string(doc(t, withAlg(ecA, "ES384"))), wantErr: `does not fit a EC P-256 key`},
		{name: "RSA key too short", data: string(doc(t, jose.JSONWebKey{Key: short.Public()})), wantErr: "RSA key of 1024 bits is too short"},
		{name: "invalid RSA key", data: `{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}`, wantErr: "invalid RSA key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := ParseJWKS([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseJWKS() = %d keys, want error containing %q", len(set.Keys), tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "jwks: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseJWKS() error = %q, want %q", err, tt.wantErr)
				}
				if _, err := NewStatic([]byte(tt.data)); err == nil {
					t.Fatal("NewStatic() accepted what ParseJWKS refused")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseJWKS() error = %v", err)
			}
			var kids []string
			for _, k := range set.Keys {
				if !k.IsPublic() || !k.Valid() {
					t.Errorf("key %q is not a valid public key", k.KeyID)
				}
				kids = append(kids, k.KeyID)
			}
			if fmt.Sprint(kids) != fmt.Sprint(tt.wantKIDs) {
				t.Errorf("kids = %v, want %v", kids, tt.wantKIDs)
			}
			s, err := NewStatic([]byte(tt.data))
			if err != nil {
				t.Fatalf("NewStatic() error = %v", err)
			}
			if s.Len() != len(tt.wantKIDs) {
				t.Errorf("Len() = %d, want %d", s.Len(), len(tt.wantKIDs))
			}
		})
	}
}

func TestSupportedAlgorithms(t *testing.T) {
	got := SupportedAlgorithms()
	want := "[RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA]"
	if fmt.Sprint(got) != want {
		t.Fatalf("SupportedAlgorithms() = %v, want %v", got, want)
	}
	got[0] = "none"
	if SupportedAlgorithms()[0] != "RS256" {
		t.Fatal("SupportedAlgorithms() shares its slice")
	}
}

// b64 is base64url without padding, the JWS encoding.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// tamper replaces one part (0 header, 1 payload, 2 signature) of a compact
// JWS with f applied to its decoded bytes.
func tamper(tb testing.TB, token string, part int, f func([]byte) []byte) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[part])
	if err != nil {
		tb.Fatal(err)
	}
	parts[part] = base64.RawURLEncoding.EncodeToString(f(raw))
	return strings.Join(parts, ".")
}

func TestStaticVerifySignature(t *testing.T) {
	rsaA, rsaB, ecA, ec384, edA, edB := key("rsa-a"), key("rsa-b"), key("ec-a"), key("ec384"), key("ed-a"), key("ed-b")
	// rsa-any is rsa-b's public key without a declared alg: it verifies
	// every RSA algorithm.
	rsaAny := rsaB.jwk()
	rsaAny.KeyID, rsaAny.Algorithm = "rsa-any", ""
	set, err := NewStatic(doc(t, rsaA.jwk(), ecA.jwk(), ec384.jwk(), edA.jwk(), rsaAny))
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := rsaA.token(t)
	longKID := strings.Repeat("k", 1000)

	tests := []struct {
		name    string
		token   string
		wantErr error
		// wantMsg, when set, is the exact error message (for logs).
		wantMsg string
	}{
		{name: "RS256", token: valid},
		{name: "ES256", token: ecA.token(t)},
		{name: "ES384", token: ec384.token(t)},
		{name: "EdDSA", token: edA.token(t)},
		{name: "PS256 with a key that declares no alg", token: sign(t, rsaB.priv, jose.PS256, "rsa-any", testClaims)},
		{name: "RS512 with a key that declares no alg", token: sign(t, rsaB.priv, jose.RS512, "rsa-any", testClaims)},
		{name: "no kid, tries keys of the type", token: sign(t, ecA.priv, jose.ES256, "", testClaims)},
		{name: "no kid, RSA", token: sign(t, rsaB.priv, jose.RS256, "", testClaims)},

		{name: "unknown kid", token: sign(t, rsaA.priv, jose.RS256, "nope", testClaims), wantErr: ErrUnknownKeyID, wantMsg: `jwks: no key with kid "nope"`},
		{name: "long unknown kid is cut in the message", token: sign(t, rsaA.priv, jose.RS256, longKID, testClaims), wantErr: ErrUnknownKeyID, wantMsg: fmt.Sprintf(`jwks: no key with kid %q...`, longKID[:maxQuotedLen])},
		{name: "wrong key under a known kid", token: sign(t, rsaB.priv, jose.RS256, "rsa-a", testClaims), wantErr: ErrInvalidSignature, wantMsg: "jwks: signature verification failed"},
		{name: "wrong Ed25519 key without kid", token: sign(t, edB.priv, jose.EdDSA, "", testClaims), wantErr: ErrInvalidSignature},
		{name: "bad signature", token: tamper(t, valid, 2, func(b []byte) []byte { b[len(b)/2] ^= 1; return b }), wantErr: ErrInvalidSignature},
		{name: "tampered payload", token: tamper(t, valid, 1, func([]byte) []byte { return []byte(`{"sub":"admin"}`) }), wantErr: ErrInvalidSignature},
		{name: "tampered header", token: tamper(t, ecA.token(t), 0, func([]byte) []byte { return []byte(`{"alg":"ES256","kid":"ec-a","x":1}`) }), wantErr: ErrInvalidSignature},
		{name: "alg other than the key declares", token: sign(t, rsaA.priv, jose.PS256, "rsa-a", testClaims), wantErr: ErrNoMatchingKey, wantMsg: `jwks: no key for token algorithm PS256 (kid "rsa-a")`},
		{name: "EC alg with an RSA key's kid", token: sign(t, ecA.priv, jose.ES256, "rsa-a", testClaims), wantErr: ErrNoMatchingKey},
		{name: "no kid, no key of the type", token: sign(t, p521, jose.ES512, "", testClaims), wantErr: ErrNoMatchingKey, wantMsg: "jwks: no key for token algorithm ES512"},

		{name: "alg none", token: b64(`{"alg":"none","kid":"rsa-a"}`) + "." + b64(testClaims) + ".", wantErr: ErrUnsupportedAlgorithm, wantMsg: `jwks: unsupported token algorithm "none"`},
		{name: "HS256 keyed with the RSA public key", token: sign(t, publicPEM(t, rsaA), jose.HS256, "rsa-a", testClaims), wantErr: ErrUnsupportedAlgorithm},
		{name: "HS256", token: sign(t, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, "", testClaims), wantErr: ErrUnsupportedAlgorithm},
		{name: "no alg", token: b64(`{"kid":"rsa-a"}`) + "." + b64(testClaims) + ".c2ln", wantErr: ErrUnsupportedAlgorithm},

		{name: "empty", token: "", wantErr: ErrMalformedToken},
		{name: "not a JWT", token: "opaque-bearer-token", wantErr: ErrMalformedToken},
		{name: "two parts", token: "a.b", wantErr: ErrMalformedToken},
		{name: "four parts", token: valid + ".x", wantErr: ErrMalformedToken},
		{name: "JWE-shaped", token: "a.b.c.d.e", wantErr: ErrMalformedToken},
		{name: "bad base64", token: "!!!." + b64(testClaims) + ".c2ln", wantErr: ErrMalformedToken},
		{name: "header not JSON", token: b64("hello") + "." + b64(testClaims) + ".c2ln", wantErr: ErrMalformedToken},
		{name: "JSON serialization", token: `{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"c2ln"}`, wantErr: ErrMalformedToken},
		{name: "whitespace around", token: " " + valid + "\n", wantErr: ErrMalformedToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, err := set.VerifySignature(context.Background(), tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifySignature() error = %v", err)
				}
				if string(payload) != testClaims {
					t.Fatalf("payload = %s, want %s", payload, testClaims)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifySignature() error = %v, want %v", err, tt.wantErr)
			}
			if payload != nil {
				t.Errorf("payload = %s on error", payload)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

// publicPEM is k's public key in PEM, the HMAC secret an algorithm
// confusion attack uses: it is public, so anyone could mint HS256 tokens.
func publicPEM(tb testing.TB, k testKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add(docOf(f, key("rsa-a"), key("ec-a"), key("ed-a")))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseJWKS(data)
		if err != nil {
			return
		}
		if len(set.Keys) == 0 || len(set.Keys) > MaxKeys {
			t.Fatalf("accepted a set of %d keys", len(set.Keys))
		}
		for _, k := range set.Keys {
			if !k.IsPublic() || !k.Valid() {
				t.Fatalf("accepted key %q of type %T", k.KeyID, k.Key)
			}
		}
	})
}

func FuzzStaticVerifySignature(f *testing.F) {
	rsaA, ecA, edA := key("rsa-a"), key("ec-a"), key("ed-a")
	set, err := NewStatic(docOf(f, rsaA, ecA, edA))
	if err != nil {
		f.Fatal(err)
	}
	for _, tok := range []string{rsaA.token(f), ecA.token(f), edA.token(f), sign(f, ecA.priv, jose.ES256, "", testClaims), "a.b.c", ""} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		payload, err := set.VerifySignature(context.Background(), token)
		if err == nil && !bytes.Equal(payload, []byte(testClaims)) {
			t.Fatalf("verified a payload nobody signed: %q", payload)
		}
	})
}

func BenchmarkStaticVerifySignature(b *testing.B) {
	set, err := NewStatic(docOf(b, key("rsa-a"), key("rsa-b"), key("ec-a"), key("ec-b"), key("ed-a")))
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"rsa-a", "ec-a", "ed-a"} {
		k := key(name)
		token := k.token(b)
		b.Run(string(k.alg), func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if _, err := set.VerifySignature(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
