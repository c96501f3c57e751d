package jwks

import (
	"context"
	"fmt"
)

// StaticKeySet is a key set that does not change: an inline document or the
// content of a Secret. A changed Secret is a new StaticKeySet, built by the
// controller and published with the rest of the compiled authenticator.
// It is immutable and safe for concurrent use.
type StaticKeySet struct {
	keys *keySet
}

// NewStatic parses a JWKS document (see ParseJWKS for what is accepted).
func NewStatic(data []byte) (*StaticKeySet, error) {
	s, err := parseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return &StaticKeySet{keys: s}, nil
}

// VerifySignature parses jwt as a compact JWS, verifies its signature with
// the key its "kid" names (with every key of the fitting type when it names
// none) and returns the payload. The claims are not checked: that is the
// caller's job (the API server's OIDC verifier). It implements go-oidc's
// KeySet. Errors wrap the package's Err values.
func (s *StaticKeySet) VerifySignature(_ context.Context, jwt string) ([]byte, error) {
	jws, err := parseToken(jwt)
	if err != nil {
		return nil, err
	}
	payload, _, err := s.keys.verify(jws)
	return payload, err
}

// Len returns the number of signing keys, for the object's status.
func (s *StaticKeySet) Len() int {
	return len(s.keys.keys)
}
