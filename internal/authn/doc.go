// Package authn is the token-authentication engine: a pure function from a
// bearer token to a user, over an immutable compiled Snapshot of the
// StaticToken and JWTAuthenticator objects.
//
// The Engine implements k8s.io/apiserver's authenticator.Token, the same
// interface the API server's own token authenticators implement, so the
// webhook handler only decodes a TokenReview, calls AuthenticateToken and
// encodes the answer. Controllers compile objects into a Registry, which
// publishes a new Snapshot through an atomic.Pointer; the request path never
// takes a lock that a writer holds.
package authn
