// Package v1alpha1 contains the authorization.portcullis.io/v1alpha1 API:
// AccessPolicy, which the /authorize webhook evaluates before RBAC.
//
// +kubebuilder:object:generate=true
// +groupName=authorization.portcullis.io
package v1alpha1
