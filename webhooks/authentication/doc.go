// Package authentication serves /authenticate: the TokenReview webhook that
// kube-apiserver calls with --authentication-token-webhook-config-file.
//
// The handler is thin: http.go decodes and hardens (method, content type,
// size cap, version, panics), the engine in internal/authn decides, and
// response.go turns the decision into the wire answer. It answers
// authentication.k8s.io/v1 and v1beta1 in the version it was asked.
package authentication
