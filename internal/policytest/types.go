package policytest

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion and Kind of a test file's documents.
const (
	APIVersion = "cli.portcullis.io/v1alpha1"
	Kind       = "Test"
)

// Test is one document of kind Test: cases run against the policies and
// objects of the directories it names.
type Test struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	// Policies are files or directories (not searched below), relative to
	// the test's file, whose policies and objects (Namespaces, Secrets) the
	// cases run with. Omitted: the test file's own directory.
	Policies []string `json:"policies,omitempty"`
	// APIAudiences are the API server's own audiences (its
	// --api-audiences), which a token for none in particular is for;
	// omitted: https://kubernetes.default.svc.cluster.local.
	APIAudiences []string `json:"apiAudiences,omitempty"`
	Cases        []Case   `json:"cases"`
}

// Case is one input to one phase and what it must give. Exactly one of
// Authentication, Authorization and Admission is set.
type Case struct {
	Name           string               `json:"name"`
	Authentication *AuthenticationInput `json:"authentication,omitempty"`
	Authorization  *AuthorizationInput  `json:"authorization,omitempty"`
	Admission      *AdmissionInput      `json:"admission,omitempty"`
	Expect         Expect               `json:"expect"`
}

// AuthenticationInput is a bearer token as the API server passes it in a
// TokenReview.
type AuthenticationInput struct {
	// Token is the bearer token itself.
	Token string `json:"token,omitempty"`
	// TokenFrom reads it from a Secret among the test's objects.
	TokenFrom *SecretKey `json:"tokenFrom,omitempty"`
	// Audiences of the review; omitted: the API server's own.
	Audiences []string `json:"audiences,omitempty"`
}

// SecretKey names a key of a Secret among the test's objects.
type SecretKey struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// AuthorizationInput is a SubjectAccessReview, whole or as a shorthand.
type AuthorizationInput struct {
	// Request is USER/VERB/RESOURCE: RESOURCE is a resource
	// ("pods"), with a group ("deployments.apps") and a subresource
	// ("pods/log", "deployments.apps/scale"), or a non-resource path
	// starting with "/" ("bob/get//healthz").
	Request   string   `json:"request,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	// SubjectAccessReview is the review's spec, instead of Request.
	SubjectAccessReview *authorizationv1.SubjectAccessReviewSpec `json:"subjectAccessReview,omitempty"`
}

// AdmissionInput is a request through mutating, then validating
// admission, as the API server makes it.
type AdmissionInput struct {
	// Operation is CREATE (the default), UPDATE, DELETE or CONNECT.
	Operation string `json:"operation,omitempty"`
	// Object and OldObject as the API server sends them; OldObject for
	// UPDATE and DELETE.
	Object    map[string]any `json:"object,omitempty"`
	OldObject map[string]any `json:"oldObject,omitempty"`
	// Resource is the object's resource (plural); omitted: guessed from
	// its kind, as kubectl does ("Pod" → "pods").
	Resource    string `json:"resource,omitempty"`
	SubResource string `json:"subResource,omitempty"`
	// Namespace of the request, set in the objects that have none;
	// omitted: the object's, else "default" unless the kind is a
	// cluster-scoped built-in. "" for a cluster-scoped custom resource.
	Namespace *string `json:"namespace,omitempty"`
	// User making the request; omitted: "test-user" in
	// system:authenticated.
	User   *authenticationv1.UserInfo `json:"user,omitempty"`
	DryRun bool                       `json:"dryRun,omitempty"`
}

// Expect is what a case must give; what it leaves out is not checked.
type Expect struct {
	// Authenticated and User: the token review's answer (User's fields
	// are compared when given).
	Authenticated *bool                      `json:"authenticated,omitempty"`
	User          *authenticationv1.UserInfo `json:"user,omitempty"`
	// Decision is Allow, Deny or NoOpinion (the next authorizer, RBAC,
	// decides); ReasonContains is part of the reason.
	Decision       string `json:"decision,omitempty"`
	ReasonContains string `json:"reasonContains,omitempty"`
	// Allowed says whether admission admits the request; MessageContains
	// is part of the refusal's message; Warnings are the warnings, all of
	// them, in order; Object is the object admitted, after mutation,
	// whole.
	Allowed         *bool          `json:"allowed,omitempty"`
	MessageContains string         `json:"messageContains,omitempty"`
	Warnings        []string       `json:"warnings,omitempty"`
	Object          map[string]any `json:"object,omitempty"`
	// ErrorContains expects an error containing it: of a policy that
	// could not be evaluated (which its failurePolicy then handled: see
	// allowed), or of the whole phase.
	ErrorContains string `json:"errorContains,omitempty"`
}
