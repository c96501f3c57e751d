// Package v1alpha1 contains the operator.portcullis.io/v1alpha1 API:
// WebhookBundle, the singleton ("default") that configures the bundle and
// reports its health.
//
// +kubebuilder:object:generate=true
// +groupName=operator.portcullis.io
package v1alpha1
