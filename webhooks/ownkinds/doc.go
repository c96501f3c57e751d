// Package ownkinds serves the admission webhooks for Portcullis's own
// kinds.
//
// /validate-portcullis (Validator) refuses at `kubectl apply` what the CRD
// schema cannot check (CEL that does not compile, field combinations),
// answering like the API server's own validation (422 Invalid with the
// field named).
//
// /approve-portcullis (Approver) refuses escalation, checked with
// SubjectAccessReviews as the author: an AccessPolicy that would grant
// what its author cannot do (the grants read from the compiled policy the
// engine decides with), a StaticToken for an identity its author may not
// impersonate, a JWTAuthenticator by an author who may not impersonate
// anyone; `escalate` on the kind overrides, the same rule RBAC applies to
// Roles. It records the approval on the object (package approval), which
// the Validator and the controllers verify against what the object grants.
package ownkinds
