// Package authz is the authorization engine: a pure function from a
// request's authorizer.Attributes to Allow, Deny or NoOpinion, over an
// immutable compiled Snapshot of the AccessPolicy objects.
//
// The Engine implements k8s.io/apiserver's authorizer.Authorizer, the
// interface the API server's own authorizers (RBAC, Node, webhook)
// implement, so the SubjectAccessReview handler only decodes a review,
// calls Authorize and encodes the answer. Evaluate returns the same
// decision as data (which policy decided, what DryRun policies would have
// done, which conditions failed) for the decision log.
//
// Compile turns one AccessPolicy into a Policy: subjects become index
// keys, rules become matchers with the same semantics as RBAC's
// PolicyRule (plus "pods/*" for every subresource of a resource), the
// namespaceSelector a labels.Selector and the conditions a CEL matcher
// compiled in the API server's own SubjectAccessReview environment (the
// one its authorization webhook matchConditions use). ValidateAccessPolicy
// is the same compilation, for the validating webhook.
//
// Controllers put compiled policies into a Registry, which indexes them
// by subject and then by API group and resource and publishes a new
// Snapshot through an atomic.Pointer. A request looks up its user, each
// of its groups and its service-account namespace, and checks only the
// rules filed under its resource, so the cost of a decision does not grow
// with policies about other subjects or resources. The request path never
// takes a lock that a writer holds.
package authz
