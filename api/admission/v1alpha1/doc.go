// Package v1alpha1 contains the admission.portcullis.io/v1alpha1 API:
// MutationPolicy and ValidationPolicy, which the /mutate and /validate
// admission webhooks evaluate.
//
// +kubebuilder:object:generate=true
// +groupName=admission.portcullis.io
package v1alpha1
