package v1alpha1

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PolicyStatus reports whether a policy is served.
type PolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready says whether the policy is compiled and applied.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Execution says who evaluates the policy, and why: the API server
	// (Native, as the generated ValidatingAdmissionPolicy or
	// MutatingAdmissionPolicy and binding it names) or the webhook.
	// PolicyExceptions have none.
	// +optional
	Execution *ExecutionStatus `json:"execution,omitempty"`
	// Audit is the last background audit's finding for a ValidationPolicy.
	// +optional
	Audit *AuditStatus `json:"audit,omitempty"`
}

// AuditStatus is what the background audit found for a policy.
type AuditStatus struct {
	// Violations is how many existing objects violate the policy.
	Violations int32 `json:"violations"`
	// Audited is how many existing objects the policy matched.
	Audited int32 `json:"audited"`
	// Time is when the audit ended.
	Time metav1.Time `json:"time"`
	// ObservedGeneration is the policy's generation audited.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Message says what of the policy's rules was not audited, and why
	// (wildcards, Secrets, resources not served or not readable).
	// +optional
	Message string `json:"message,omitempty"`
}

// ExecutionMode is who evaluates a policy.
// +kubebuilder:validation:Enum=Native;Webhook
type ExecutionMode string

const (
	// ExecutionNative: the API server evaluates the policy itself.
	ExecutionNative ExecutionMode = "Native"
	// ExecutionWebhook: the webhook evaluates the policy.
	ExecutionWebhook ExecutionMode = "Webhook"
)

// ExecutionStatus is who evaluates a policy, and why.
type ExecutionStatus struct {
	// Mode is Native or Webhook.
	Mode ExecutionMode `json:"mode"`
	// Reason is why, in one CamelCase word: Generated (Native);
	// Requested (the WebhookBundle asks for the webhook), NotExpressible
	// (the message names the feature), Invalid (the policy does not
	// compile), NotServed (the API server does not serve the native kind),
	// Refused (the API server refused the generated objects; the message
	// says why), Disabled (the WebhookBundle turns the webhook off, and
	// with it the policy), HandingOver (the generated objects are not yet
	// in force, or the webhook is taking the policy back).
	Reason string `json:"reason"`
	// Message says it for a person.
	// +optional
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the policy generation it was decided for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Execution reasons.
const (
	ReasonGenerated      = "Generated"
	ReasonRequested      = "Requested"
	ReasonNotExpressible = "NotExpressible"
	ReasonNotServed      = "NotServed"
	ReasonHandingOver    = "HandingOver"
	ReasonRefused        = "Refused"
	ReasonDisabled       = "Disabled"
)

// MutationPolicySpec changes matching objects on their way in.
type MutationPolicySpec struct {
	Match Match `json:"match"`
	// ParamKind is the kind of the policy's parameter objects, any group,
	// version and kind (a ConfigMap, say: {apiVersion: v1, kind:
	// ConfigMap}), which its expressions read as params, as a
	// ValidatingAdmissionPolicy's or MutatingAdmissionPolicy's paramKind.
	// The operator watches the kinds that loaded policies name: granting
	// it list and watch on them is the admin's choice.
	// +optional
	ParamKind *admissionregistrationv1.ParamKind `json:"paramKind,omitempty"`
	// ParamRef says which objects of paramKind the policy is evaluated
	// with, once per object, as a policy binding's paramRef: by name or
	// by selector, in namespace (for a namespaced kind; the request's own
	// namespace when unset), and what to do when there is none
	// (parameterNotFoundAction, required: Allow skips the policy, Deny
	// is an error of the policy, under its failure policy). Without it a
	// policy with a paramKind is evaluated once, with params null.
	// +optional
	ParamRef *admissionregistrationv1.ParamRef `json:"paramRef,omitempty"`
	// Variables are named CEL expressions that the policy's other
	// expressions (conditions included) read as variables.NAME, each
	// evaluated at most once per request, when first read, as a
	// MutatingAdmissionPolicy's or ValidatingAdmissionPolicy's variables.
	// A variable may read those before it.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Variables []admissionregistrationv1.Variable `json:"variables,omitempty"`
	// Order: policies apply in ascending order, then by name.
	// +optional
	Order int32 `json:"order,omitempty"`
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Mutations []Mutation `json:"mutations"`
	// AuditAnnotations are added to the audit event of every request the
	// policy applies to, evaluated on the object as the policy left it:
	// as a ValidationPolicy's, the key KEY of policy NAME is recorded as
	// WEBHOOK/NAME.KEY, and a valueExpression that returns null adds
	// nothing.
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	AuditAnnotations []admissionregistrationv1.AuditAnnotation `json:"auditAnnotations,omitempty"`
	// FailurePolicy is what happens to a request this policy matches when
	// the policy cannot be applied: it failed to compile, a condition
	// failed to evaluate, a patch does not apply. Fail (the default, as
	// for a MutatingAdmissionPolicy) rejects the request naming the
	// policy; Ignore skips this policy, with a warning and a metric, and
	// the other policies still apply.
	// +kubebuilder:validation:Enum=Fail;Ignore
	// +kubebuilder:default=Fail
	// +optional
	FailurePolicy *admissionregistrationv1.FailurePolicyType `json:"failurePolicy,omitempty"`
}

// MutationPolicy changes matching objects in mutating admission.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mp,categories=portcullis
// +kubebuilder:printcolumn:name="Order",type=integer,JSONPath=`.spec.order`
// +kubebuilder:printcolumn:name="Params",type=string,JSONPath=`.spec.paramKind.kind`,priority=1
// +kubebuilder:printcolumn:name="Failure",type=string,JSONPath=`.spec.failurePolicy`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Execution",type=string,JSONPath=`.status.execution.mode`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MutationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MutationPolicySpec `json:"spec"`
	Status PolicyStatus       `json:"status,omitempty"`
}

// MutationPolicyList is a list of MutationPolicies.
// +kubebuilder:object:root=true
type MutationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MutationPolicy `json:"items"`
}

// Action is what a failing validation does.
// +kubebuilder:validation:Enum=Deny;Warn;Audit
type Action string

const (
	// ActionDeny rejects the request with every failing message.
	ActionDeny Action = "Deny"
	// ActionWarn admits it with warnings that kubectl shows.
	ActionWarn Action = "Warn"
	// ActionAudit admits it, adding audit annotations, a log line and a metric.
	ActionAudit Action = "Audit"
)

// Validation is one CEL check.
type Validation struct {
	// Expression must be true for the request to pass; it sees the same
	// variables as a ValidatingAdmissionPolicy's: object, oldObject,
	// request, namespaceObject and the policy's variables (not authorizer,
	// which the webhook cannot offer without calling the API server).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Expression string `json:"expression"`
	// Message is returned when the expression is false.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
	// MessageExpression is CEL yielding the message; it wins over message
	// when it evaluates to a non-empty string.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	MessageExpression string `json:"messageExpression,omitempty"`
}

// ValidationPolicySpec checks matching requests.
// +kubebuilder:validation:XValidation:rule="(has(self.validations) && size(self.validations) > 0) || (has(self.auditAnnotations) && size(self.auditAnnotations) > 0)",message="a ValidationPolicy has at least one validation or audit annotation"
type ValidationPolicySpec struct {
	Match Match `json:"match"`
	// +kubebuilder:default=Deny
	// +optional
	Action Action `json:"action,omitempty"`
	// ParamKind is the kind of the policy's parameter objects, any group,
	// version and kind (a ConfigMap, say: {apiVersion: v1, kind:
	// ConfigMap}), which its expressions read as params, as a
	// ValidatingAdmissionPolicy's or MutatingAdmissionPolicy's paramKind.
	// The operator watches the kinds that loaded policies name: granting
	// it list and watch on them is the admin's choice.
	// +optional
	ParamKind *admissionregistrationv1.ParamKind `json:"paramKind,omitempty"`
	// ParamRef says which objects of paramKind the policy is evaluated
	// with, once per object, as a policy binding's paramRef: by name or
	// by selector, in namespace (for a namespaced kind; the request's own
	// namespace when unset), and what to do when there is none
	// (parameterNotFoundAction, required: Allow skips the policy, Deny
	// is an error of the policy, under its failure policy). Without it a
	// policy with a paramKind is evaluated once, with params null.
	// +optional
	ParamRef *admissionregistrationv1.ParamRef `json:"paramRef,omitempty"`
	// Variables are named CEL expressions that the policy's other
	// expressions (conditions included) read as variables.NAME, each
	// evaluated at most once per request, when first read, as a
	// MutatingAdmissionPolicy's or ValidatingAdmissionPolicy's variables.
	// A variable may read those before it.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Variables []admissionregistrationv1.Variable `json:"variables,omitempty"`

	// Validations are checked in order; a policy has at least one
	// validation or audit annotation.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Validations []Validation `json:"validations,omitempty"`
	// AuditAnnotations are added to the audit event of every request the
	// policy matches, as a ValidatingAdmissionPolicy's: the key KEY of
	// policy NAME is recorded as WEBHOOK/NAME.KEY (the API server prefixes
	// a webhook's annotations with the webhook's name, and a key has one
	// "/"), and a valueExpression that returns null adds nothing. A policy
	// the API server executes natively records KEY as
	// NAME.validate.portcullis.io/KEY, the generated policy's name
	// prefixing it as the API server prefixes a ValidatingAdmissionPolicy's.
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	AuditAnnotations []admissionregistrationv1.AuditAnnotation `json:"auditAnnotations,omitempty"`
	// FailurePolicy is what happens to a request this policy matches when
	// the policy cannot be evaluated: it failed to compile, a validation
	// or condition failed to evaluate, the CEL budget ran out. Fail (the
	// default, as for a ValidatingAdmissionPolicy) takes the error as a
	// failed validation, handled by the action (Deny rejects the request
	// naming the policy, Warn and Audit report it); Ignore skips the
	// policy.
	// +kubebuilder:validation:Enum=Fail;Ignore
	// +kubebuilder:default=Fail
	// +optional
	FailurePolicy *admissionregistrationv1.FailurePolicyType `json:"failurePolicy,omitempty"`
}

// ValidationPolicy checks matching requests in validating admission.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=vp,categories=portcullis
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Params",type=string,JSONPath=`.spec.paramKind.kind`,priority=1
// +kubebuilder:printcolumn:name="Failure",type=string,JSONPath=`.spec.failurePolicy`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Execution",type=string,JSONPath=`.status.execution.mode`
// +kubebuilder:printcolumn:name="Violations",type=integer,JSONPath=`.status.audit.violations`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ValidationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ValidationPolicySpec `json:"spec"`
	Status PolicyStatus         `json:"status,omitempty"`
}

// ValidationPolicyList is a list of ValidationPolicies.
// +kubebuilder:object:root=true
type ValidationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ValidationPolicy `json:"items"`
}
