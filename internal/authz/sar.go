package authz

import (
	"context"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// SARFromAttributes builds the SubjectAccessReview that policy conditions
// see as `request`: the same review the API server's webhook authorizer
// (k8s.io/apiserver/plugin/pkg/authorizer/webhook) sends for these
// attributes, so a condition means the same thing here as in its
// AuthorizationConfiguration matchConditions.
func SARFromAttributes(a authorizer.Attributes) *authorizationv1.SubjectAccessReview {
	r := &authorizationv1.SubjectAccessReview{}
	if u := a.GetUser(); u != nil {
		r.Spec = authorizationv1.SubjectAccessReviewSpec{
			User:   u.GetName(),
			UID:    u.GetUID(),
			Groups: u.GetGroups(),
			Extra:  sarExtra(u.GetExtra()),
		}
	}
	if !a.IsResourceRequest() {
		r.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: a.GetPath(), Verb: a.GetVerb()}
		return r
	}
	ra := &authorizationv1.ResourceAttributes{
		Namespace:   a.GetNamespace(),
		Verb:        a.GetVerb(),
		Group:       a.GetAPIGroup(),
		Version:     a.GetAPIVersion(),
		Resource:    a.GetResource(),
		Subresource: a.GetSubresource(),
		Name:        a.GetName(),
	}
	// As the API server does: requirements that parsed are used even when
	// others did not, because selectors only narrow a request.
	if reqs := fieldRequirements(a); len(reqs) > 0 {
		ra.FieldSelector = &authorizationv1.FieldSelectorAttributes{Requirements: reqs}
	}
	if reqs := labelRequirements(a); len(reqs) > 0 {
		ra.LabelSelector = &authorizationv1.LabelSelectorAttributes{Requirements: reqs}
	}
	r.Spec.ResourceAttributes = ra
	return r
}

func sarExtra(extra map[string][]string) map[string]authorizationv1.ExtraValue {
	if extra == nil {
		return nil
	}
	out := make(map[string]authorizationv1.ExtraValue, len(extra))
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// fieldRequirements converts a request's field selector the way the API
// server's webhook authorizer does; unknown operators are dropped, which
// only widens the request.
func fieldRequirements(a authorizer.Attributes) []metav1.FieldSelectorRequirement {
	reqs, _ := a.GetFieldSelector()
	var out []metav1.FieldSelectorRequirement
	for _, r := range reqs {
		switch r.Operator {
		case selection.Equals, selection.DoubleEquals, selection.In:
			out = append(out, metav1.FieldSelectorRequirement{Key: r.Field, Operator: metav1.FieldSelectorOpIn, Values: []string{r.Value}})
		case selection.NotEquals, selection.NotIn:
			out = append(out, metav1.FieldSelectorRequirement{Key: r.Field, Operator: metav1.FieldSelectorOpNotIn, Values: []string{r.Value}})
		}
	}
	return out
}

// labelRequirements converts a request's label selector the way the API
// server's webhook authorizer does.
func labelRequirements(a authorizer.Attributes) []metav1.LabelSelectorRequirement {
	reqs, _ := a.GetLabelSelector()
	var out []metav1.LabelSelectorRequirement
	for _, r := range reqs {
		lr := metav1.LabelSelectorRequirement{Key: r.Key()}
		if values := r.ValuesUnsorted(); len(values) > 0 {
			lr.Values = values
		}
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			lr.Operator = metav1.LabelSelectorOpIn
		case selection.NotEquals, selection.NotIn:
			lr.Operator = metav1.LabelSelectorOpNotIn
		case selection.Exists:
			lr.Operator = metav1.LabelSelectorOpExists
		case selection.DoesNotExist:
			lr.Operator = metav1.LabelSelectorOpDoesNotExist
		default:
			continue
		}
		out = append(out, lr)
	}
	return out
}

type reviewKey struct{}

// WithReview returns a context carrying the SubjectAccessReview the
// attributes were read from. Conditions then see the review exactly as the
// API server sent it (label and field selectors included) instead of one
// rebuilt from the attributes. The review must not be modified afterwards.
func WithReview(ctx context.Context, sar *authorizationv1.SubjectAccessReview) context.Context {
	return context.WithValue(ctx, reviewKey{}, sar)
}

func reviewFrom(ctx context.Context) *authorizationv1.SubjectAccessReview {
	sar, _ := ctx.Value(reviewKey{}).(*authorizationv1.SubjectAccessReview)
	return sar
}
