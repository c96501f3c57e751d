package v1alpha1

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ResourceRule selects requests by group, version, resource and operation,
// as a webhook's rules do.
type ResourceRule struct {
	// APIGroups; "" is the core group, "*" all.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	APIGroups []string `json:"apiGroups"`
	// APIVersions; "*" all.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	APIVersions []string `json:"apiVersions"`
	// Resources, with "pods/status" naming a subresource, "pods/*" all of a
	// resource's subresources, "*" all resources, "*/*" everything.
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	Resources []string `json:"resources"`
	// Operations: CREATE, UPDATE, DELETE, CONNECT or "*".
	// +kubebuilder:validation:MinItems=1
	// +listType=set
	// +kubebuilder:validation:items:Enum=CREATE;UPDATE;DELETE;CONNECT;"*"
	Operations []admissionregistrationv1.OperationType `json:"operations"`
}

// MatchCondition is a CEL expression that must be true for the policy to
// apply, as a webhook's matchConditions.
type MatchCondition struct {
	// Name identifies the condition in errors.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression"`
}

// Match says which admission requests a policy applies to. Shared by
// MutationPolicy and ValidationPolicy.
type Match struct {
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Resources []ResourceRule `json:"resources"`
	// NamespaceSelector restricts namespaced objects by their namespace's
	// labels (a Namespace object itself is matched by its own labels; other
	// cluster-scoped objects always match, as with a webhook's selector).
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ObjectSelector restricts by the object's labels (old or new).
	// +optional
	ObjectSelector *metav1.LabelSelector `json:"objectSelector,omitempty"`
	// ExcludedNamespaces are never matched.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
	// Conditions, all of which must be true.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Conditions []MatchCondition `json:"conditions,omitempty"`
}

// Mutation is one change to the object: exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.setLabels), has(self.setAnnotations), has(self.jsonPatch), has(self.mergePatch)].filter(x, x).size() == 1",message="exactly one of setLabels, setAnnotations, jsonPatch or mergePatch must be set"
type Mutation struct {
	// SetLabels sets metadata.labels entries.
	// +optional
	SetLabels map[string]string `json:"setLabels,omitempty"`
	// SetAnnotations sets metadata.annotations entries.
	// +optional
	SetAnnotations map[string]string `json:"setAnnotations,omitempty"`
	// Overwrite replaces existing label and annotation values; by default
	// an existing value is kept.
	// +optional
	Overwrite bool `json:"overwrite,omitempty"`
	// JSONPatch is an RFC 6902 patch, as a JSON string.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	JSONPatch string `json:"jsonPatch,omitempty"`
	// MergePatch is an RFC 7386 merge patch.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	MergePatch *runtime.RawExtension `json:"mergePatch,omitempty"`
}

// Condition types and reasons shared by the admission kinds.
const (
	ConditionReady = "Ready"
	ReasonLoaded   = "Loaded"
	ReasonInvalid  = "Invalid"
)
