// Package jwks loads JSON Web Key Sets (RFC 7517) and verifies the signature
// of compact JWS tokens against them.
//
// A JWTAuthenticator names its issuer's signing keys in one of three ways:
// inline, in a Secret, or at an https URL. Inline and Secret documents become
// a StaticKeySet; a URL becomes a RemoteKeySet, fetched once when it is built
// (so a broken URL, CA or document is an error the controller reports in the
// object's status) and then refreshed in the background.
//
// Both types implement VerifySignature(ctx, jwt) ([]byte, error), the KeySet
// interface of github.com/coreos/go-oidc that the API server's own OIDC
// authenticator (k8s.io/apiserver/plugin/pkg/authenticator/token/oidc) takes
// as Options.KeySet, so token verification stays the API server's code and
// this package only supplies keys.
//
// Only public keys are accepted, and only asymmetric signature algorithms
// (RS*, PS*, ES*, EdDSA): a JWKS is published, so a private or symmetric key
// in it is a leaked secret, and accepting HMAC or "none" would let anyone who
// can read the published keys mint tokens. Keys embedded in a token's own
// header (jwk, jku, x5c, x5u) are never used.
//
// The request path takes no lock: the current keys are an immutable value
// behind an atomic.Pointer that a fetch replaces whole.
package jwks
