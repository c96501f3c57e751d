// Package admission serves the operator's admission webhooks: /mutate and
// /validate, the AdmissionReview webhooks of the
// MutatingWebhookConfiguration and ValidatingWebhookConfiguration the
// operator keeps, and (Handler) the webhooks of its own kinds.
//
// The shape is controller-runtime's admission package: http.go reads,
// decodes and hardens (method, content type, body cap, version, panics,
// UID) and writes the answer, the engines in internal/admission decide,
// and webhook.go turns their results into the review's answer and the
// decision log. One difference is deliberate: when a policy cannot be
// evaluated (or before the first sync), or a handler panics, the call
// fails with HTTP 500 instead of answering allowed: false, because the
// API server applies the webhook configuration's failurePolicy only to a
// failed call — an answer would be taken as a rejection.
package admission
