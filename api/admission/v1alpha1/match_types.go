package v1alpha1

import (
	"bytes"
	"encoding/json"

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
	// MatchPolicy says how rules match a request made through another
	// version of the same resource, as for a webhook or an admission
	// policy: Equivalent (the default) also matches it, converted to the
	// version a rule names; Exact only matches the version as requested.
	// +kubebuilder:validation:Enum=Exact;Equivalent
	// +kubebuilder:default=Equivalent
	// +optional
	MatchPolicy *admissionregistrationv1.MatchPolicyType `json:"matchPolicy,omitempty"`
	// Conditions, all of which must be true. They see the policy's
	// variables, as a MutatingAdmissionPolicy's matchConditions do.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Conditions []MatchCondition `json:"conditions,omitempty"`
}

// Mutation is one change to the object: exactly one field is set. The
// CEL forms, applyConfiguration and jsonPatch's expression, are those of
// an admissionregistration.k8s.io/v1 MutatingAdmissionPolicy, evaluated
// and applied by the API server's own libraries.
// +kubebuilder:validation:XValidation:rule="[has(self.setLabels), has(self.setAnnotations), has(self.mergePatch), has(self.applyConfiguration)].filter(x, x).size() <= 1",message="exactly one of setLabels, setAnnotations, jsonPatch, mergePatch or applyConfiguration must be set"
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
	// JSONPatch is an RFC 6902 JSON patch, in one of two forms: static,
	// the patch as a JSON string ('[{"op": "add", ...}]') or a list of
	// operations, or computed,
	// {expression: CEL} returning a list of JSONPatch values, as a
	// MutatingAdmissionPolicy's jsonPatch. Either is applied as RFC 6902
	// says (evanphx/json-patch, as the API server applies it), except that
	// a failing test operation leaves the object unchanged instead of
	// failing the request, as in a MutatingAdmissionPolicy.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	JSONPatch *JSONPatch `json:"jsonPatch,omitempty"`
	// MergePatch is an RFC 7386 merge patch.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	MergePatch *runtime.RawExtension `json:"mergePatch,omitempty"`
	// ApplyConfiguration is a CEL expression returning an apply
	// configuration (Object{...}), merged into the object with
	// server-side apply's structured-merge-diff semantics, as a
	// MutatingAdmissionPolicy's applyConfiguration.
	// +optional
	ApplyConfiguration *admissionregistrationv1.ApplyConfiguration `json:"applyConfiguration,omitempty"`
}

// JSONPatch is a Mutation's jsonPatch: a static RFC 6902 patch (Patch,
// written as a JSON string or as a list of operations) or a CEL
// expression computing one (Expression, written as an object
// {expression: ...}). Exactly one is set. Decoding never fails: anything
// else is kept in Invalid, so that one badly written policy is reported in
// its status rather than breaking the decoding of every policy.
type JSONPatch struct {
	// Patch is the static patch, as JSON.
	Patch string `json:"-"`
	// Expression is CEL returning a list of JSONPatch{op, path, from,
	// value} values, with the variables of a MutatingAdmissionPolicy's
	// jsonPatch expression.
	Expression string `json:"-"`
	// Invalid is what was written when it is neither form, as JSON.
	Invalid string `json:"-"`
}

// jsonPatchExpression is JSONPatch's computed form as written.
type jsonPatchExpression struct {
	Expression string `json:"expression"`
}

// MarshalJSON writes the static form as a string, the computed one as an
// object, and what was invalid as it was written.
func (p JSONPatch) MarshalJSON() ([]byte, error) {
	switch {
	case p.Invalid != "":
		return []byte(p.Invalid), nil
	case p.Expression != "":
		return json.Marshal(jsonPatchExpression{Expression: p.Expression})
	}
	return json.Marshal(p.Patch)
}

// UnmarshalJSON reads either form. An object may have no member other
// than expression.
func (p *JSONPatch) UnmarshalJSON(b []byte) error {
	*p = JSONPatch{}
	t := bytes.TrimSpace(b)
	if len(t) > 0 {
		switch t[0] {
		case '"':
			if json.Unmarshal(t, &p.Patch) == nil {
				return nil
			}
		case '[':
			var c bytes.Buffer
			if json.Compact(&c, t) == nil {
				p.Patch = c.String()
				return nil
			}
		case '{':
			dec := json.NewDecoder(bytes.NewReader(t))
			dec.DisallowUnknownFields()
			var e jsonPatchExpression
			if dec.Decode(&e) == nil && e.Expression != "" {
				p.Expression = e.Expression
				return nil
			}
		}
	}
	p.Invalid = string(t)
	return nil
}

// Condition types and reasons shared by the admission kinds.
const (
	ConditionReady = "Ready"
	ReasonLoaded   = "Loaded"
	ReasonInvalid  = "Invalid"
	// ReasonParamsUnavailable: the policy compiled, but the parameter
	// kind it names is not served, or its cache has not synced.
	ReasonParamsUnavailable = "ParamsUnavailable"
)
