package v1alpha1

// SecretKeySelector names a key of a Secret in the operator's namespace.
// The operator only ever reads Secrets in its own namespace, so there is no
// namespace field.
type SecretKeySelector struct {
	// Name of the Secret in the operator's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:default=token
	// +optional
	Key string `json:"key,omitempty"`
}

// Condition types and reasons shared by the kinds of this group.
const (
	// ConditionReady says whether the object is compiled into the snapshot
	// that the webhook serves.
	ConditionReady = "Ready"

	// ReasonLoaded: the object is compiled and served.
	ReasonLoaded = "Loaded"
	// ReasonInvalid: the spec does not compile; the message names the field.
	ReasonInvalid = "Invalid"
	// ReasonSecretError: a referenced Secret or key is missing or unusable.
	ReasonSecretError = "SecretError"
	// ReasonJWKSError: the key set could not be read or fetched.
	ReasonJWKSError = "JWKSError"
	// ReasonExpired: the token's expiresAt has passed.
	ReasonExpired = "Expired"
	// ReasonDisabled: the token is disabled.
	ReasonDisabled = "Disabled"
	// ReasonConflict: another StaticToken, created earlier, holds the same
	// token and is the one served; a token has one identity.
	ReasonConflict = "Conflict"
	// ReasonUnapproved: the object was not written through the admission
	// check of its author (portcullis.io/approval), or what it grants
	// changed since; it is not served until applied again.
	ReasonUnapproved = "Unapproved"
)
