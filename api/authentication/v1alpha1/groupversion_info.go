package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of this API.
var GroupVersion = schema.GroupVersion{Group: "authentication.portcullis.io", Version: "v1alpha1"}

// AddToScheme adds this API's kinds to a scheme. The caller owns the scheme:
// nothing here writes to a global one.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&StaticToken{}, &StaticTokenList{},
		&JWTAuthenticator{}, &JWTAuthenticatorList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
