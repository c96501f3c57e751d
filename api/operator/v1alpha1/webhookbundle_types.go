package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultName is the name of the singleton WebhookBundle.
const DefaultName = "default"

// FailurePolicy of an admission webhook.
// +kubebuilder:validation:Enum=Ignore;Fail
type FailurePolicy string

// AdmissionWebhook configures one of the two admission webhooks.
type AdmissionWebhook struct {
	// Enabled registers the webhook (when policies need it).
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// FailurePolicy when the webhook cannot be called or cannot decide.
	// +optional
	FailurePolicy FailurePolicy `json:"failurePolicy,omitempty"`
	// TimeoutSeconds of one call.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=30
	// +optional
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// Admission configures the admission webhooks the operator keeps.
type Admission struct {
	// Mutating defaults: failurePolicy Ignore, timeoutSeconds 3.
	// +optional
	Mutating AdmissionWebhook `json:"mutating,omitempty"`
	// Validating defaults: failurePolicy Fail, timeoutSeconds 5.
	// +optional
	Validating AdmissionWebhook `json:"validating,omitempty"`
	// ExcludedNamespaces are never sent to admission, in addition to
	// kube-system and the operator's namespace, which always are excluded.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
	// Execution says who evaluates ValidationPolicies and MutationPolicies.
	// Auto (the default): the API server itself, for every policy it can
	// express as a ValidatingAdmissionPolicy or MutatingAdmissionPolicy
	// with its binding, which the operator generates and keeps; the
	// webhook serves the rest. Webhook: the webhook serves every policy.
	// Each policy's status.execution says which, and why.
	// +kubebuilder:validation:Enum=Auto;Webhook
	// +kubebuilder:default=Auto
	// +optional
	Execution AdmissionExecution `json:"execution,omitempty"`
	// Audit evaluates the ValidationPolicies against the objects that
	// already exist, and writes what violates them to PolicyReports.
	// +optional
	Audit Audit `json:"audit,omitempty"`
}

// Audit configures the background audit: the leader evaluates every
// ValidationPolicy (whatever its action) against the existing objects it
// matches, when policies change and on an interval, listing in pages, and
// writes one PolicyReport per namespace (wgpolicyk8s.io/v1alpha2) and a
// ClusterPolicyReport for cluster-scoped objects.
type Audit struct {
	// Disabled turns the audit off; its reports are then left as they are.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// Interval between audits, besides one after each change of the
	// policies, their parameters or the exceptions; at least 5s.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s')",message="the audit interval is at least 5s"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// MaxResultsPerReport caps the results a report lists (its summary
	// counts all of them): a report of a large namespace stays small,
	// far below the API server's object size limit (each result's message
	// is at most 256 bytes).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2000
	// +kubebuilder:default=1000
	// +optional
	MaxResultsPerReport int32 `json:"maxResultsPerReport,omitempty"`
}

// AdmissionExecution is who evaluates admission policies.
type AdmissionExecution string

const (
	// ExecutionAuto executes natively what the API server can express.
	ExecutionAuto AdmissionExecution = "Auto"
	// ExecutionWebhook keeps every policy on the webhook.
	ExecutionWebhook AdmissionExecution = "Webhook"
)

// ServiceEndpoint is the Service in front of the webhook server.
type ServiceEndpoint struct {
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:default=443
	// +optional
	Port int32 `json:"port,omitempty"`
}

// Endpoint is how the API server reaches the webhooks: a Service in a
// cluster, or a URL for an operator outside one. Exactly one.
// +kubebuilder:validation:XValidation:rule="has(self.service) != has(self.url)",message="exactly one of service or url must be set"
type Endpoint struct {
	// +optional
	Service *ServiceEndpoint `json:"service,omitempty"`
	// URL is an https base URL; the phase paths are appended.
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://')",message="must be an https URL"
	// +optional
	URL string `json:"url,omitempty"`
}

// Authentication configures the token webhook as rendered for the API
// server (the Secret portcullis-apiserver-config).
type Authentication struct {
	// CacheTTL is how long the API server caches a token review; 2m when
	// unset. Shorter makes revocation quicker and costs more calls.
	// +optional
	CacheTTL *metav1.Duration `json:"cacheTTL,omitempty"`
}

// AuthorizationFailurePolicy is what the API server does when the
// authorization webhook fails.
// +kubebuilder:validation:Enum=NoOpinion;Deny
type AuthorizationFailurePolicy string

// Authorization configures the authorization webhook as rendered for the
// API server's AuthorizationConfiguration.
type Authorization struct {
	// Enabled puts the Portcullis authorizer in the rendered chain.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// FailurePolicy: NoOpinion (RBAC decides while the webhook is down;
	// Deny policies are lost meanwhile) or Deny. NoOpinion when unset.
	// +optional
	FailurePolicy AuthorizationFailurePolicy `json:"failurePolicy,omitempty"`
	// Timeout of one SubjectAccessReview; 3s when unset.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// AuthorizedTTL and UnauthorizedTTL: how long the API server caches
	// answers; 5m and 30s when unset.
	// +optional
	AuthorizedTTL *metav1.Duration `json:"authorizedTTL,omitempty"`
	// +optional
	UnauthorizedTTL *metav1.Duration `json:"unauthorizedTTL,omitempty"`
}

// WebhookBundleSpec configures the bundle. Token authentication and
// authorization are wired in the API server's own flags (see
// `portcullis apiserver-config`); this object configures what the operator
// registers itself.
type WebhookBundleSpec struct {
	// Authentication and Authorization shape the API-server wiring the
	// operator renders into the Secret portcullis-apiserver-config;
	// the API server reads them from its own files, so apply the rendered
	// files to take a change into use.
	// +optional
	Authentication Authentication `json:"authentication,omitempty"`
	// +optional
	Authorization Authorization `json:"authorization,omitempty"`
	// +optional
	Admission Admission `json:"admission,omitempty"`
	// Endpoint, when set, replaces the operator's --webhook-url /
	// --webhook-service in the webhook configurations it keeps.
	// +optional
	Endpoint *Endpoint `json:"endpoint,omitempty"`
}

// PolicyCount is how many objects of a kind are loaded and failing.
type PolicyCount struct {
	Kind    string `json:"kind"`
	Loaded  int32  `json:"loaded"`
	Failing int32  `json:"failing"`
}

// CertificateStatus describes the webhook serving certificate.
type CertificateStatus struct {
	// NotAfter is when the serving certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
}

// Condition types of a WebhookBundle.
const (
	ConditionCertificateReady              = "CertificateReady"
	ConditionCRDsEstablished               = "CRDsEstablished"
	ConditionAdmissionWebhooksConfigured   = "AdmissionWebhooksConfigured"
	ConditionAuthenticationWebhookObserved = "AuthenticationWebhookObserved"
	ConditionAuthorizationWebhookObserved  = "AuthorizationWebhookObserved"
	ConditionReady                         = "Ready"
)

// WebhookBundleStatus is the operator's dashboard.
type WebhookBundleStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: CertificateReady, CRDsEstablished,
	// AdmissionWebhooksConfigured, AuthenticationWebhookObserved and
	// AuthorizationWebhookObserved (set once the API server is seen calling),
	// and Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Policies: loaded and failing counts per kind.
	// +listType=map
	// +listMapKey=kind
	// +optional
	Policies []PolicyCount `json:"policies,omitempty"`
	// +optional
	Certificate CertificateStatus `json:"certificate,omitempty"`
}

// WebhookBundle configures the Portcullis bundle and reports its health.
// There is one, named "default"; the operator creates it when absent.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=wb,categories=portcullis
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="the WebhookBundle is a singleton named default"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Certificate",type=string,JSONPath=`.status.certificate.notAfter`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WebhookBundle struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WebhookBundleSpec   `json:"spec,omitempty"`
	Status WebhookBundleStatus `json:"status,omitempty"`
}

// WebhookBundleList is a list of WebhookBundles.
// +kubebuilder:object:root=true
type WebhookBundleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookBundle `json:"items"`
}
