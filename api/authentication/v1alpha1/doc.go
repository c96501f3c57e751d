// Package v1alpha1 contains the authentication.portcullis.io/v1alpha1 API:
// StaticToken and JWTAuthenticator, the two kinds the /authenticate webhook
// answers TokenReviews from.
//
// +kubebuilder:object:generate=true
// +groupName=authentication.portcullis.io
package v1alpha1
