// Package apiserverconfig renders the files a cluster admin gives
// kube-apiserver to wire Portcullis into the authentication and authorization
// phases.
//
// Admission webhooks are registered through the API
// (Mutating/ValidatingWebhookConfiguration), but the token authenticator and
// the authorizer cannot be: they are API-server flags and config files. This
// package renders them from one Options value:
//
//   - a token webhook kubeconfig (server = URL + "/authenticate"), given to
//     --authentication-token-webhook-config-file;
//   - an authorization webhook kubeconfig (server = URL + "/authorize");
//   - an AuthorizationConfiguration (apiserver.config.k8s.io/v1), given to
//     --authorization-config: [Node], the Portcullis webhook guarded by
//     matchConditions that keep the operator, the control-plane components
//     and kube-system's service accounts out of it, then
//     RBAC.
//
// The same rendering serves the local control plane (internal/controlplane)
// and the `portcullis apiserver-config` command, so what tests run against is
// what clusters are given.
//
// The API server caches our answers (token reviews for TokenCacheTTL,
// authorization decisions for AuthorizedTTL/UnauthorizedTTL): a policy change
// takes up to that long to be seen by a user who was already answered. Tests
// set the TTLs low or negative (no cache).
package apiserverconfig
