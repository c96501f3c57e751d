// Package approval records, on a Portcullis object that can grant
// permissions or an identity (AccessPolicy, StaticToken,
// JWTAuthenticator), who was checked for what it grants, so that the
// controllers serve only what passed the escalation check.
//
// The own-kinds mutating webhook checks the author with
// SubjectAccessReviews for what the object grants (read as the engines
// serve it: authz.Policy.EscalationGrants, authn.Impersonations,
// authn.JWTAuthenticatorGrants) and then stamps the object: the author's
// identity (AuthorAnnotation) and a MAC (ApprovalAnnotation) over the
// kind, the namespace, the author and a digest of the spec. The
// controllers serve the object only when the MAC verifies for the spec
// they serve. An object written past the webhook (created while its
// configuration was missing) or whose spec changed since the check is
// reported, not served. The key lives in a Secret of the operator's
// namespace, shared by every replica.
package approval
