// Package authorization serves /authorize: the SubjectAccessReview webhook
// that kube-apiserver calls as the Portcullis authorizer of its
// AuthorizationConfiguration, before RBAC.
//
// The same shape as webhooks/authentication: http.go decodes and hardens,
// the engine in internal/authz decides (it implements the API server's
// authorizer.Authorizer), response.go maps the decision to the wire answer.
// authorization.k8s.io v1 and v1beta1 are answered in the version asked.
package authorization
