package v1alpha1

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyReference names one admission policy.
type PolicyReference struct {
	// Kind is ValidationPolicy or MutationPolicy.
	// +kubebuilder:validation:Enum=ValidationPolicy;MutationPolicy
	Kind string `json:"kind"`
	// Name of the policy.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ServiceAccountReference names one service account.
type ServiceAccountReference struct {
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// ExceptionMatch says which requests are exempted: every criterion given
// must hold, and a list holds when any of its entries does. One that gives
// none exempts every request the policies match.
type ExceptionMatch struct {
	// Namespaces of the objects (a cluster-scoped object has none, so it
	// is not exempted by a list of namespaces).
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
	// Names of the objects.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Names []string `json:"names,omitempty"`
	// ObjectSelector selects by the object's labels (old or new), as a
	// policy's match.objectSelector.
	// +optional
	ObjectSelector *metav1.LabelSelector `json:"objectSelector,omitempty"`
	// Operations: CREATE, UPDATE, DELETE or CONNECT.
	// +listType=set
	// +kubebuilder:validation:items:Enum=CREATE;UPDATE;DELETE;CONNECT
	// +optional
	Operations []admissionregistrationv1.OperationType `json:"operations,omitempty"`
	// Users, Groups and ServiceAccounts are who makes the request (one of
	// them is enough).
	// +listType=set
	// +optional
	Users []string `json:"users,omitempty"`
	// +listType=set
	// +optional
	Groups []string `json:"groups,omitempty"`
	// +listType=atomic
	// +optional
	ServiceAccounts []ServiceAccountReference `json:"serviceAccounts,omitempty"`
}

// PolicyExceptionSpec exempts requests from admission policies.
type PolicyExceptionSpec struct {
	// Policies are the policies the exception applies to.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Policies []PolicyReference `json:"policies"`
	// Match says which of their requests are exempted.
	// +optional
	Match ExceptionMatch `json:"match,omitempty"`
	// ExpiresAt ends the exception: from then on it exempts nothing. RFC
	// 3339 (upper-case T and Z, as Go reads it).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// Reason says why, for the decision log and whoever reviews it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}

// PolicyException exempts some requests from some admission policies,
// without weakening the policies for everyone. It is as powerful as
// editing those policies, so writing one needs the right to update each.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=pex,categories=portcullis
// +kubebuilder:printcolumn:name="Policies",type=string,JSONPath=`.spec.policies[*].name`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PolicyException struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PolicyExceptionSpec `json:"spec"`
	Status PolicyStatus        `json:"status,omitempty"`
}

// PolicyExceptionList is a list of PolicyExceptions.
// +kubebuilder:object:root=true
type PolicyExceptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyException `json:"items"`
}

// Reasons of a PolicyException's Ready condition besides Loaded and
// Invalid.
const (
	// ReasonExpired: expiresAt has passed; it exempts nothing.
	ReasonExpired = "Expired"
	// ReasonUnapproved: it was not written through the check that its
	// author may update every policy it names (portcullis.io/approval), or
	// its spec changed since; it exempts nothing.
	ReasonUnapproved = "Unapproved"
)
