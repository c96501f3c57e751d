package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Effect of a matching policy.
// +kubebuilder:validation:Enum=Allow;Deny
type Effect string

const (
	// EffectAllow allows the request, unless an enforced Deny also matches.
	EffectAllow Effect = "Allow"
	// EffectDeny denies the request; no RBAC binding can override it.
	EffectDeny Effect = "Deny"
)

// Enforcement says whether a policy changes answers.
// +kubebuilder:validation:Enum=Enforce;DryRun
type Enforcement string

const (
	// EnforcementEnforce: the policy decides.
	EnforcementEnforce Enforcement = "Enforce"
	// EnforcementDryRun: the policy is evaluated, logged and counted as
	// "would allow" or "would deny", and changes no answer.
	EnforcementDryRun Enforcement = "DryRun"
)

// SubjectKind is the kind of a subject.
// +kubebuilder:validation:Enum=User;Group;ServiceAccount
type SubjectKind string

const (
	SubjectUser           SubjectKind = "User"
	SubjectGroup          SubjectKind = "Group"
	SubjectServiceAccount SubjectKind = "ServiceAccount"
)

// Subject is who a policy applies to. A ServiceAccount matches the user
// system:serviceaccount:NAMESPACE:NAME; with name "*" it matches every
// service account of the namespace (the group system:serviceaccounts:NAMESPACE).
// +kubebuilder:validation:XValidation:rule="self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)",message="namespace is required for ServiceAccount subjects and not allowed for others"
type Subject struct {
	Kind SubjectKind `json:"kind"`
	// Name of the user, group or service account; "*" for a ServiceAccount
	// means all of the namespace's.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Namespace of a ServiceAccount.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// Rule says which requests a policy covers: either resource requests
// (apiGroups, resources, ...) or non-resource URLs, with verbs or readonly.
// +kubebuilder:validation:XValidation:rule="has(self.nonResourceURLs) != (has(self.resources) || has(self.apiGroups))",message="a rule has either nonResourceURLs, or apiGroups and resources"
// +kubebuilder:validation:XValidation:rule="!has(self.nonResourceURLs) || (!has(self.namespaces) && !has(self.resourceNames))",message="namespaces and resourceNames do not apply to nonResourceURLs"
// +kubebuilder:validation:XValidation:rule="has(self.verbs) != (has(self.readonly) && self.readonly)",message="set exactly one of verbs or readonly: true"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || has(self.apiGroups)",message="apiGroups is required with resources (use [\"\"] for the core group)"
type Rule struct {
	// Namespaces the rule applies in: omitted or ["*"] means every
	// namespace and cluster-scoped requests; [""] means requests of
	// cluster-scoped resources only. A request without a namespace of
	// anything else (a list of a namespaced resource across every
	// namespace) is allowed only by a rule of every namespace.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// APIGroups; "" is the core group, "*" all.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	APIGroups []string `json:"apiGroups,omitempty"`
	// Resources, with "pods/log" naming a subresource, "pods/*" all of a
	// resource's subresources, "*" all resources and subresources.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +listType=set
	// +optional
	Resources []string `json:"resources,omitempty"`
	// ResourceNames restricts the rule to named objects.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	ResourceNames []string `json:"resourceNames,omitempty"`
	// Verbs, such as get, list, watch, create, update, patch, delete,
	// deletecollection, or "*".
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +listType=set
	// +optional
	Verbs []string `json:"verbs,omitempty"`
	// Readonly is shorthand for verbs [get, list, watch].
	// +optional
	Readonly bool `json:"readonly,omitempty"`
	// NonResourceURLs are paths such as /healthz; a trailing "*" matches a
	// prefix (/apis/*).
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +listType=set
	// +optional
	NonResourceURLs []string `json:"nonResourceURLs,omitempty"`
}

// Condition is a CEL expression over the SubjectAccessReview (variable
// `request`, as in the API server's authorization webhook matchConditions)
// that must be true for the policy to match.
type Condition struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression"`
	// Message explains the condition in decisions and logs.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// AccessPolicySpec says who may or may not do what.
type AccessPolicySpec struct {
	Effect Effect `json:"effect"`
	// +kubebuilder:default=Enforce
	// +optional
	Enforcement Enforcement `json:"enforcement,omitempty"`
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	Subjects []Subject `json:"subjects"`
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	Rules []Rule `json:"rules"`
	// NamespaceSelector restricts namespaced requests to namespaces whose
	// labels match. Cluster-scoped requests never match a policy that has one.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Conditions must all be true for the policy to match.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Conditions []Condition `json:"conditions,omitempty"`
}

// AccessPolicyStatus reports whether the policy is served.
type AccessPolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready says whether the policy is compiled and evaluated.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AccessPolicy allows or denies requests before RBAC is asked.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ap,categories=portcullis
// +kubebuilder:printcolumn:name="Effect",type=string,JSONPath=`.spec.effect`
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AccessPolicySpec   `json:"spec"`
	Status AccessPolicyStatus `json:"status,omitempty"`
}

// AccessPolicyList is a list of AccessPolicies.
// +kubebuilder:object:root=true
type AccessPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessPolicy `json:"items"`
}

// Condition types and reasons.
const (
	ConditionReady = "Ready"
	ReasonLoaded   = "Loaded"
	ReasonInvalid  = "Invalid"
	// ReasonUnapproved: the policy was not written through the admission
	// check of its author (portcullis.io/approval), or what it grants
	// changed since; it is not served until applied again.
	ReasonUnapproved = "Unapproved"
)
