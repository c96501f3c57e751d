// Package portcullis serves /validate-portcullis: the validating admission
// webhook for Portcullis's own kinds. It refuses at `kubectl apply` what the
// CRD schema cannot check (CEL that does not compile, field combinations),
// answering like the API server's own validation (422 Invalid with the
// field named), and it refuses an AccessPolicy that would let its author
// grant what they cannot do themselves (escalation), unless they may
// `escalate` accesspolicies — the same rule RBAC applies to Roles.
package portcullis
