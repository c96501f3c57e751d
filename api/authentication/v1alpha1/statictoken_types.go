package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UserInfo is the identity a token authenticates as, as in a TokenReview's
// status.user.
type UserInfo struct {
	// Username of the authenticated user.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Username string `json:"username"`
	// UID of the user, if any.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	UID string `json:"uid,omitempty"`
	// Groups the user belongs to.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +listType=set
	// +optional
	Groups []string `json:"groups,omitempty"`
	// Extra information about the user, as in user.Info's extra: each key
	// with at least one value, as impersonation gives them.
	// +optional
	Extra map[string]ExtraValues `json:"extra,omitempty"`
}

// ExtraValues are the values of one extra key: a key without a value is
// one impersonation cannot give, and that no check would cover.
// +kubebuilder:validation:MinItems=1
type ExtraValues []string

// StaticTokenSpec is a bearer token that authenticates as a fixed user.
type StaticTokenSpec struct {
	// User that the token authenticates as.
	User UserInfo `json:"user"`
	// SecretRef names the Secret, in the operator's namespace, that holds the
	// token. When the Secret or key is absent the operator creates it with a
	// random 256-bit token. The token itself never appears in status or logs.
	SecretRef SecretKeySelector `json:"secretRef"`
	// ExpiresAt, when set, is the instant from which the token no longer
	// authenticates, in RFC 3339 (upper-case T and Z, as Go reads it).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// Disabled turns the token off without deleting it.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
}

// StaticTokenStatus reports whether the token is served.
type StaticTokenStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready says whether the token authenticates now, and if not why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// StaticToken maps a bearer token, kept in a Secret, to a user.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=stok,categories=portcullis
// +kubebuilder:printcolumn:name="Username",type=string,JSONPath=`.spec.user.username`
// +kubebuilder:printcolumn:name="Secret",type=string,JSONPath=`.spec.secretRef.name`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=`.spec.disabled`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type StaticToken struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   StaticTokenSpec   `json:"spec"`
	Status StaticTokenStatus `json:"status,omitempty"`
}

// StaticTokenList is a list of StaticTokens.
// +kubebuilder:object:root=true
type StaticTokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StaticToken `json:"items"`
}
