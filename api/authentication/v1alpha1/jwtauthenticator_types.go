package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JWTIssuer says which tokens an authenticator accepts. Semantics follow the
// issuer of the API server's AuthenticationConfiguration JWT authenticator.
type JWTIssuer struct {
	// URL is the issuer; a token's "iss" claim must equal it exactly, and it
	// picks the authenticator for the token. Must be https.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://')",message="must be an https URL"
	URL string `json:"url"`
	// Audiences: the token's "aud" claim must contain at least one of them.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +listType=set
	Audiences []string `json:"audiences"`
}

// JWKSSource says where the issuer's public keys come from: exactly one of
// inline, secretRef or url.
// +kubebuilder:validation:XValidation:rule="[has(self.inline), has(self.secretRef), has(self.url)].filter(x, x).size() == 1",message="exactly one of inline, secretRef or url must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.certificateAuthority) || has(self.url)",message="certificateAuthority is only used with url"
type JWKSSource struct {
	// Inline is a JSON Web Key Set document (RFC 7517).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	Inline string `json:"inline,omitempty"`
	// SecretRef names a key of a Secret in the operator's namespace that
	// holds a JSON Web Key Set document. A changed Secret is reloaded.
	// +optional
	SecretRef *SecretKeySelector `json:"secretRef,omitempty"`
	// URL is an https address serving the JSON Web Key Set. It is fetched at
	// load, refreshed every refreshInterval, and refetched (rate limited) when
	// a token names an unknown key id.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://')",message="must be an https URL"
	// +optional
	URL string `json:"url,omitempty"`
	// CertificateAuthority is PEM-encoded CA certificates used to verify the
	// url's TLS certificate; the system roots when empty.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	CertificateAuthority string `json:"certificateAuthority,omitempty"`
	// RefreshInterval is how often a url key set is fetched again.
	// Defaults to 1h; at least 1m, so that an issuer is not polled in a loop.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="must be at least 1m"
	// +optional
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
}

// PrefixedClaimOrExpression maps a claim, with a prefix, or a CEL expression
// to a user attribute.
// +kubebuilder:validation:XValidation:rule="has(self.claim) != has(self.expression)",message="exactly one of claim or expression must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.expression) || !has(self.prefix)",message="prefix can only be used with claim"
type PrefixedClaimOrExpression struct {
	// Claim is the name of the JWT claim to read.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Claim string `json:"claim,omitempty"`
	// Prefix is prepended to the claim's value. Required with claim for the
	// username (use "" for none), as in the API server's configuration.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Prefix *string `json:"prefix,omitempty"`
	// Expression is a CEL expression over `claims` that yields the value.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Expression string `json:"expression,omitempty"`
}

// ClaimOrExpression maps a claim or a CEL expression to a user attribute.
// +kubebuilder:validation:XValidation:rule="!(has(self.claim) && has(self.expression))",message="claim and expression are mutually exclusive"
type ClaimOrExpression struct {
	// Claim is the name of the JWT claim to read.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Claim string `json:"claim,omitempty"`
	// Expression is a CEL expression over `claims`.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Expression string `json:"expression,omitempty"`
}

// ExtraMapping adds one key of the user's extra information.
type ExtraMapping struct {
	// Key is a domain-prefixed, lower-case key, such as example.com/tenant.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Key string `json:"key"`
	// ValueExpression is a CEL expression over `claims` that yields a string
	// or a list of strings.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	ValueExpression string `json:"valueExpression"`
}

// ClaimMappings turns a verified token's claims into a user.
type ClaimMappings struct {
	// Username is required.
	Username PrefixedClaimOrExpression `json:"username"`
	// +optional
	Groups PrefixedClaimOrExpression `json:"groups,omitempty"`
	// +optional
	UID ClaimOrExpression `json:"uid,omitempty"`
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=key
	// +optional
	Extra []ExtraMapping `json:"extra,omitempty"`
}

// ClaimValidationRule is checked against the token's claims.
// +kubebuilder:validation:XValidation:rule="has(self.claim) != has(self.expression)",message="exactly one of claim or expression must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.requiredValue) || has(self.claim)",message="requiredValue can only be used with claim"
// +kubebuilder:validation:XValidation:rule="!has(self.message) || has(self.expression)",message="message can only be used with expression"
type ClaimValidationRule struct {
	// Claim must be present with requiredValue.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Claim string `json:"claim,omitempty"`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	RequiredValue string `json:"requiredValue,omitempty"`
	// Expression is a CEL expression over `claims` that must be true.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Expression string `json:"expression,omitempty"`
	// Message is logged when the expression is false.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// UserValidationRule is checked against the mapped user.
type UserValidationRule struct {
	// Expression is a CEL expression over `user` that must be true.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression"`
	// Message is logged when the expression is false.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// JWTAuthenticatorSpec authenticates JWTs from one issuer. Field names and
// semantics follow the API server's AuthenticationConfiguration.
type JWTAuthenticatorSpec struct {
	Issuer JWTIssuer `json:"issuer"`
	// JWKS is where the issuer's signing keys come from.
	JWKS JWKSSource `json:"jwks"`
	// ClaimMappings turn claims into a user.
	ClaimMappings ClaimMappings `json:"claimMappings"`
	// ClaimValidationRules must all hold for a token to authenticate.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	ClaimValidationRules []ClaimValidationRule `json:"claimValidationRules,omitempty"`
	// UserValidationRules must all hold for the mapped user.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	UserValidationRules []UserValidationRule `json:"userValidationRules,omitempty"`
}

// JWTAuthenticatorStatus reports whether the authenticator is served.
type JWTAuthenticatorStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready says whether tokens are verified with this
	// authenticator, and if not why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Keys is the number of signing keys loaded.
	// +optional
	Keys int32 `json:"keys,omitempty"`
}

// JWTAuthenticator verifies JWTs from one issuer and maps their claims to a user.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=jwta,categories=portcullis
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuer.url`
// +kubebuilder:printcolumn:name="Keys",type=integer,JSONPath=`.status.keys`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type JWTAuthenticator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   JWTAuthenticatorSpec   `json:"spec"`
	Status JWTAuthenticatorStatus `json:"status,omitempty"`
}

// JWTAuthenticatorList is a list of JWTAuthenticators.
// +kubebuilder:object:root=true
type JWTAuthenticatorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []JWTAuthenticator `json:"items"`
}
