// Package admission serves /mutate and /validate: the AdmissionReview
// webhooks of the MutatingWebhookConfiguration and
// ValidatingWebhookConfiguration the operator keeps.
//
// The shape is controller-runtime's admission package: http.go decodes and
// hardens (method, content type, body cap, version, panics, UID), the
// engines in internal/admission decide, and response.go builds the review
// answer. One difference is deliberate: when a policy cannot be evaluated
// (or before the first sync) the call fails with HTTP 500 instead of
// answering allowed: false, because the API server applies the webhook
// configuration's failurePolicy only to a failed call — an answer would
// be taken as a rejection.
package admission
