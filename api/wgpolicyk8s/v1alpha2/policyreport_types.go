package v1alpha2

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyResult is a result's outcome.
// +kubebuilder:validation:Enum=pass;fail;warn;error;skip
type PolicyResult string

// Outcomes of a result.
const (
	StatusPass  PolicyResult = "pass"
	StatusFail  PolicyResult = "fail"
	StatusWarn  PolicyResult = "warn"
	StatusError PolicyResult = "error"
	StatusSkip  PolicyResult = "skip"
)

// PolicySeverity is how severe a result is.
// +kubebuilder:validation:Enum=critical;high;low;medium;info
type PolicySeverity string

// PolicyReportSummary counts the results by outcome.
type PolicyReportSummary struct {
	// Pass counts the policy requirements met.
	// +optional
	Pass int `json:"pass"`
	// Fail counts the policy requirements not met.
	// +optional
	Fail int `json:"fail"`
	// Warn counts the non-scored failures.
	// +optional
	Warn int `json:"warn"`
	// Error counts the policies that could not be evaluated.
	// +optional
	Error int `json:"error"`
	// Skip counts the policies not selected or not evaluated.
	// +optional
	Skip int `json:"skip"`
}

// PolicyReportResult is one outcome of a policy for a set of resources.
type PolicyReportResult struct {
	// Source is the policy engine that produced the result.
	// +optional
	Source string `json:"source,omitempty"`
	// Policy is the name of the policy.
	Policy string `json:"policy"`
	// Rule is the name of the rule (a validation) in the policy.
	// +optional
	Rule string `json:"rule,omitempty"`
	// Category is the policy's category.
	// +optional
	Category string `json:"category,omitempty"`
	// Severity of the result.
	// +optional
	Severity PolicySeverity `json:"severity,omitempty"`
	// Timestamp is when the result was found.
	// +optional
	Timestamp metav1.Timestamp `json:"timestamp,omitempty"`
	// Result is the outcome.
	// +optional
	Result PolicyResult `json:"result,omitempty"`
	// Scored is false for results that are informational only.
	// +optional
	Scored bool `json:"scored,omitempty"`
	// Resources are the objects the result is about.
	// +optional
	Resources []corev1.ObjectReference `json:"resources,omitempty"`
	// ResourceSelector selects the objects the result is about, instead
	// of Resources.
	// +optional
	ResourceSelector *metav1.LabelSelector `json:"resourceSelector,omitempty"`
	// Message says why the policy was not met.
	// +optional
	Message string `json:"message,omitempty"`
	// Properties are other information about the result.
	// +optional
	Properties map[string]string `json:"properties,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=policyreports,scope=Namespaced,shortName=polr
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.scope.kind`,priority=1
// +kubebuilder:printcolumn:name="Name",type=string,JSONPath=`.scope.name`,priority=1
// +kubebuilder:printcolumn:name="Pass",type=integer,JSONPath=`.summary.pass`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.summary.fail`
// +kubebuilder:printcolumn:name="Warn",type=integer,JSONPath=`.summary.warn`
// +kubebuilder:printcolumn:name="Error",type=integer,JSONPath=`.summary.error`
// +kubebuilder:printcolumn:name="Skip",type=integer,JSONPath=`.summary.skip`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// PolicyReport holds the results of policies for the objects of one
// namespace.
type PolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Scope is the object the report is about, when it is about one.
	// +optional
	Scope *corev1.ObjectReference `json:"scope,omitempty"`
	// ScopeSelector selects the objects the report is about.
	// +optional
	ScopeSelector *metav1.LabelSelector `json:"scopeSelector,omitempty"`
	// Summary counts the results by outcome.
	// +optional
	Summary PolicyReportSummary `json:"summary,omitempty"`
	// Results are the policies' outcomes.
	// +optional
	Results []PolicyReportResult `json:"results,omitempty"`
}

// +kubebuilder:object:root=true

// PolicyReportList is a list of PolicyReports.
type PolicyReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyReport `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=clusterpolicyreports,scope=Cluster,shortName=cpolr
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.scope.kind`,priority=1
// +kubebuilder:printcolumn:name="Name",type=string,JSONPath=`.scope.name`,priority=1
// +kubebuilder:printcolumn:name="Pass",type=integer,JSONPath=`.summary.pass`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.summary.fail`
// +kubebuilder:printcolumn:name="Warn",type=integer,JSONPath=`.summary.warn`
// +kubebuilder:printcolumn:name="Error",type=integer,JSONPath=`.summary.error`
// +kubebuilder:printcolumn:name="Skip",type=integer,JSONPath=`.summary.skip`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ClusterPolicyReport holds the results of policies for cluster-scoped
// objects.
type ClusterPolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +optional
	Scope *corev1.ObjectReference `json:"scope,omitempty"`
	// +optional
	ScopeSelector *metav1.LabelSelector `json:"scopeSelector,omitempty"`
	// +optional
	Summary PolicyReportSummary `json:"summary,omitempty"`
	// +optional
	Results []PolicyReportResult `json:"results,omitempty"`
}

// +kubebuilder:object:root=true

// ClusterPolicyReportList is a list of ClusterPolicyReports.
type ClusterPolicyReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterPolicyReport `json:"items"`
}
