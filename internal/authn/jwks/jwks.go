package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// MaxDocumentBytes caps a JWKS document, whether inline, from a Secret or
// fetched over HTTP. Issuers publish a handful of keys: a 4096-bit RSA JWK is
// under 1 KiB, a few KiB with an x5c chain. 1 MiB is far above any real set
// and still small enough that a broken or hostile endpoint cannot make the
// operator buffer without bound.
const MaxDocumentBytes = 1 << 20

// MaxKeys caps the number of keys in one set. A token without a kid is
// checked against every key of its type, so the cap bounds the signature
// checks one forged token can cost; issuers publish a few keys (current,
// next, previous), never hundreds.
const MaxKeys = 100

// MinRSAKeyBits is the smallest RSA modulus accepted. 2048 bits is the floor
// NIST SP 800-131A allows for signatures; shorter keys are within reach of
// factoring. go-jose refuses moduli above jose.MaxRSAModulusBits (4096),
// which bounds the cost of a verification.
const MinRSAKeyBits = 2048

// maxQuotedLen caps how much of an attacker-chosen header value (kid, alg)
// goes into an error message, so a forged token cannot bloat the log line
// that reports it.
const maxQuotedLen = 64

// Errors returned by VerifySignature; they wrap a detail meant for logs.
// Callers test them with errors.Is and must not show the detail to the
// token's bearer: an unauthenticated answer says nothing about which step
// failed.
var (
	// ErrMalformedToken is a token that is not a compact JWS.
	ErrMalformedToken = errors.New("jwks: malformed token")
	// ErrUnsupportedAlgorithm is a token whose "alg" is not an asymmetric
	// signature algorithm this package accepts ("none" and HS256 included).
	ErrUnsupportedAlgorithm = errors.New("jwks: unsupported token algorithm")
	// ErrUnknownKeyID is a token whose "kid" names no key in the set.
	ErrUnknownKeyID = errors.New("jwks: no key with kid")
	// ErrNoMatchingKey is a token for which the set has no key of the right
	// type and algorithm (for example ES256 naming an RSA key's kid).
	ErrNoMatchingKey = errors.New("jwks: no key for token algorithm")
	// ErrInvalidSignature is a token that no candidate key verifies.
	ErrInvalidSignature = errors.New("jwks: signature verification failed")
)

// supportedAlgorithms are the JWS algorithms verified, in the order of the
// bits of algSet. Only asymmetric signatures: with HMAC the verification key
// is the signing key, and a JWKS is public.
var supportedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// SupportedAlgorithms returns the JWS "alg" values a key set verifies, in a
// new slice. Note that the API server's OIDC authenticator accepts all of
// them in Options.SupportedSigningAlgs except EdDSA.
func SupportedAlgorithms() []string {
	out := make([]string, len(supportedAlgorithms))
	for i, a := range supportedAlgorithms {
		out[i] = string(a)
	}
	return out
}

// algSet is a set of supportedAlgorithms, one bit each, so that matching a
// token's alg against a key costs no allocation.
type algSet uint16

func algBit(alg jose.SignatureAlgorithm) algSet {
	for i, a := range supportedAlgorithms {
		if a == alg {
			return 1 << i
		}
	}
	return 0
}

func algsOf(algs ...jose.SignatureAlgorithm) algSet {
	var s algSet
	for _, a := range algs {
		s |= algBit(a)
	}
	return s
}

// signingKey is one public key ready to verify with.
type signingKey struct {
	kid string
	// key is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	key any
	// algs is what the key may verify: its declared "alg", or every
	// algorithm its type and curve allow when it declares none.
	algs algSet
}

// keySet is an immutable, parsed set. It is shared by pointer between
// requests and never modified after parseKeySet returns.
type keySet struct {
	keys []signingKey
	// jwks holds the same keys as go-jose values, for ParseJWKS.
	jwks []jose.JSONWebKey
}

// ParseJWKS parses a JSON Web Key Set document and checks that it is fit to
// verify tokens with: at most MaxDocumentBytes, valid JSON with a "keys"
// array of at most MaxKeys keys, no private or symmetric key material, and
// only RSA (at least MinRSAKeyBits), EC P-256/P-384/P-521 and Ed25519 keys
// whose "alg", when given, is a supported algorithm for that key. Keys whose
// "use" is not "sig" (encryption keys published beside signing keys) are
// left out of the result; a set with no signing key left is an error. The
// returned set holds public keys only.
//
// The whole document is refused when one key is bad rather than that key
// being skipped: a half-loaded set would fail some tokens with no error in
// the object's status to say why.
func ParseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	s, err := parseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return &jose.JSONWebKeySet{Keys: s.jwks}, nil
}

// rawKey is the part of a JWK read before go-jose parses it, to give precise
// errors and to refuse private members of any key type.
type rawKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	// Private or symmetric members (RFC 7518 section 6, RFC 8037, ML-DSA).
	D    json.RawMessage `json:"d"`
	P    json.RawMessage `json:"p"`
	Q    json.RawMessage `json:"q"`
	DP   json.RawMessage `json:"dp"`
	DQ   json.RawMessage `json:"dq"`
	QI   json.RawMessage `json:"qi"`
	Oth  json.RawMessage `json:"oth"`
	K    json.RawMessage `json:"k"`
	Priv json.RawMessage `json:"priv"`
}

func (r *rawKey) privateMember() string {
	for _, m := range []struct {
		name string
		v    json.RawMessage
	}{{"d", r.D}, {"p", r.P}, {"q", r.Q}, {"dp", r.DP}, {"dq", r.DQ}, {"qi", r.QI}, {"oth", r.Oth}, {"priv", r.Priv}} {
		if len(m.v) > 0 && string(m.v) != "null" {
			return m.name
		}
	}
	return ""
}

// parseKeySet is ParseJWKS without the "jwks: " prefix on errors, so that
// callers can put their own context first.
func parseKeySet(data []byte) (*keySet, error) {
	if len(data) > MaxDocumentBytes {
		return nil, fmt.Errorf("key set is larger than %d bytes", MaxDocumentBytes)
	}
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
		Kty  string             `json:"kty"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			return nil, fmt.Errorf("key set is not valid JSON: %w", err)
		}
		return nil, fmt.Errorf(`not a key set (want {"keys": [...]}): %w`, err)
	}
	switch {
	case doc.Keys == nil && doc.Kty != "":
		return nil, errors.New(`document is a single key, not a key set: wrap it as {"keys": [...]}`)
	case doc.Keys == nil:
		return nil, errors.New(`key set has no "keys" member`)
	case len(*doc.Keys) == 0:
		return nil, errors.New("key set is empty")
	case len(*doc.Keys) > MaxKeys:
		return nil, fmt.Errorf("key set has %d keys, more than the %d allowed", len(*doc.Keys), MaxKeys)
	}

	s := &keySet{}
	skipped := 0
	for i, raw := range *doc.Keys {
		k, jwk, err := parseKey(raw)
		if err != nil {
			return nil, fmt.Errorf("key %d%s: %w", i, kidSuffix(raw), err)
		}
		if k == nil {
			skipped++
			continue
		}
		s.keys = append(s.keys, *k)
		s.jwks = append(s.jwks, jwk)
	}
	if len(s.keys) == 0 {
		return nil, fmt.Errorf(`key set has no signing key (%d keys skipped: their "use" is not "sig")`, skipped)
	}
	return s, nil
}

// parseKey parses one JWK into a signing key and its public go-jose form.
// It returns a nil key and no error for a key that is not for signatures.
func parseKey(raw json.RawMessage) (*signingKey, jose.JSONWebKey, error) {
	var r rawKey
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, jose.JSONWebKey{}, fmt.Errorf("not a JSON object: %w", err)
	}
	k, err := parseSigningKey(raw, &r)
	if err != nil || k == nil {
		return nil, jose.JSONWebKey{}, err
	}
	return k, jose.JSONWebKey{Key: k.key, KeyID: r.Kid, Algorithm: r.Alg, Use: r.Use}, nil
}

func parseSigningKey(raw json.RawMessage, r *rawKey) (*signingKey, error) {
	// Checked before "use": a private key is a leaked secret whatever it
	// was meant for, and the owner needs to hear about it.
	if m := r.privateMember(); m != "" {
		return nil, fmt.Errorf("contains private key material (member %q); a key set must hold public keys only", m)
	}
	if r.Kty == "oct" || len(r.K) > 0 {
		return nil, errors.New(`symmetric keys (kty "oct") are not accepted: a published key set must not hold shared secrets`)
	}
	switch r.Use {
	case "", "sig":
	default:
		// RFC 7517 section 4.2: "enc" keys are for encryption. Issuers
		// publish them beside their signing keys; they are not ours to use.
		return nil, nil
	}
	switch {
	case r.Kty == "RSA", r.Kty == "EC", r.Kty == "OKP" && r.Crv == "Ed25519":
	case r.Kty == "":
		return nil, errors.New(`missing "kty"`)
	case r.Kty == "OKP":
		return nil, fmt.Errorf(`unsupported OKP curve %q (supported: Ed25519)`, r.Crv)
	default:
		return nil, fmt.Errorf(`unsupported key type %q (supported: RSA, EC, OKP)`, r.Kty)
	}
	var declared algSet
	if r.Alg != "" {
		declared = algBit(jose.SignatureAlgorithm(r.Alg))
		if declared == 0 {
			return nil, fmt.Errorf("unsupported algorithm %q (supported: %v)", r.Alg, supportedAlgorithms)
		}
	}

	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("invalid %s key: %w", r.Kty, err)
	}
	k := &signingKey{kid: r.Kid}
	switch pub := jwk.Key.(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < MinRSAKeyBits {
			return nil, fmt.Errorf("RSA key of %d bits is too short (at least %d)", bits, MinRSAKeyBits)
		}
		k.key, k.algs = pub, algsOf(jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512)
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			k.algs = algsOf(jose.ES256)
		case elliptic.P384():
			k.algs = algsOf(jose.ES384)
		case elliptic.P521():
			k.algs = algsOf(jose.ES512)
		default:
			return nil, fmt.Errorf("unsupported EC curve %q (supported: P-256, P-384, P-521)", r.Crv)
		}
		k.key = pub
	case ed25519.PublicKey:
		k.key, k.algs = pub, algsOf(jose.EdDSA)
	default:
		// Not reached for the key types allowed above; kept so that a new
		// go-jose key type can never slip through as a verification key.
		return nil, fmt.Errorf("unsupported key type %T", jwk.Key)
	}
	if declared != 0 {
		if k.algs&declared == 0 {
			return nil, fmt.Errorf("algorithm %q does not fit a %s key", r.Alg, keyDescription(k.key))
		}
		// A key that names its algorithm verifies only that one, so a
		// token cannot pick another one the key type would also allow.
		k.algs = declared
	}
	return k, nil
}

func keyDescription(key any) string {
	switch pub := key.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC " + pub.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", key)
}

// kidSuffix names a key's kid in an error, when it has one.
func kidSuffix(raw json.RawMessage) string {
	var r struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(raw, &r) != nil || r.Kid == "" {
		return ""
	}
	return " (kid " + quote(r.Kid) + ")"
}

// quote quotes s for an error message, cut to maxQuotedLen bytes.
func quote(s string) string {
	if len(s) > maxQuotedLen {
		return fmt.Sprintf("%q...", s[:maxQuotedLen])
	}
	return fmt.Sprintf("%q", s)
}

// parseToken parses a compact JWS whose alg is one of supportedAlgorithms.
// The JSON serializations are refused: a bearer token is always compact.
func parseToken(token string) (*jose.JSONWebSignature, error) {
	jws, err := jose.ParseSignedCompact(token, supportedAlgorithms)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, fmt.Errorf("%w %s", ErrUnsupportedAlgorithm, quote(string(algErr.Got)))
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
	if len(jws.Signatures) != 1 {
		// Compact serialization carries exactly one; checked so that the
		// index below can never panic.
		return nil, fmt.Errorf("%w: %d signatures", ErrMalformedToken, len(jws.Signatures))
	}
	return jws, nil
}

// verify checks jws against the keys that may have signed it: those with
// the token's kid (every key when it has none) whose type and declared
// algorithm fit the token's alg. missing is true when the set has no such
// key, which a newer copy of a remote set might have.
func (s *keySet) verify(jws *jose.JSONWebSignature) (payload []byte, missing bool, err error) {
	h := jws.Signatures[0].Header
	alg := algBit(jose.SignatureAlgorithm(h.Algorithm))
	kid := h.KeyID
	kidFound, tried := false, false
	for i := range s.keys {
		k := &s.keys[i]
		if kid != "" && k.kid != kid {
			continue
		}
		kidFound = true
		if k.algs&alg == 0 {
			continue
		}
		tried = true
		if payload, err := jws.Verify(k.key); err == nil {
			return payload, false, nil
		}
	}
	switch {
	case !kidFound:
		return nil, true, fmt.Errorf("%w %s", ErrUnknownKeyID, quote(kid))
	case !tried && kid == "":
		return nil, true, fmt.Errorf("%w %s", ErrNoMatchingKey, h.Algorithm)
	case !tried:
		// The kid exists with another key type: a refetch would not help.
		return nil, false, fmt.Errorf("%w %s (kid %s)", ErrNoMatchingKey, h.Algorithm, quote(kid))
	}
	return nil, false, ErrInvalidSignature
}
