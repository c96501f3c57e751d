package authorization

import (
	"context"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/portcullis-io/portcullis/internal/authz"
	"github.com/portcullis-io/portcullis/internal/decision"
)

// Path is where the API server's authorization webhook kubeconfig points.
const Path = "/authorize"

// Evaluator decides a request and returns the decision as data: the
// authz Engine.
type Evaluator interface {
	Evaluate(ctx context.Context, a authorizer.Attributes) authz.Result
}

// Webhook answers SubjectAccessReviews from an evaluator.
type Webhook struct {
	// Engine decides. Required.
	Engine Evaluator
	// Recorder logs and counts decisions; nil records nothing.
	Recorder *decision.Recorder
	// Observed, when set, is called on every review.
	Observed func()
}

// Review decides one SubjectAccessReview.
func (w *Webhook) Review(ctx context.Context, sar *authorizationv1.SubjectAccessReview) authorizationv1.SubjectAccessReviewStatus {
	start := time.Now()
	if w.Observed != nil {
		w.Observed()
	}
	attrs := AttributesFrom(&sar.Spec)
	// Conditions read the review as sent, selectors included.
	res := w.Engine.Evaluate(authz.WithReview(ctx, sar), attrs)
	err := res.Err()
	st := toStatus(res.Decision, res.Reason, err)
	e := decision.Entry{
		Phase: decision.PhaseAuthorize, Result: resultName(res.Decision), User: sar.Spec.User,
		Verb: attrs.Verb, Namespace: attrs.Namespace, Reason: res.Reason, UID: string(sar.UID),
		Latency: time.Since(start),
	}
	if res.Policy != "" {
		e.Policy = authz.KindAccessPolicy + "/" + res.Policy
	}
	for _, dr := range res.DryRun {
		e.DryRun = append(e.DryRun, decision.DryRun{Policy: authz.KindAccessPolicy + "/" + dr.Policy, Would: dr.Would})
	}
	if attrs.ResourceRequest {
		e.Resource = resourceString(attrs)
	} else {
		e.Resource = attrs.Path
	}
	if err != nil {
		e.Reason += "; evaluation error: " + err.Error()
	}
	w.Recorder.Record(e)
	return st
}

// AttributesFrom turns a SubjectAccessReview spec into the attributes the
// API server's authorizers see.
func AttributesFrom(s *authorizationv1.SubjectAccessReviewSpec) authorizer.AttributesRecord {
	u := &user.DefaultInfo{Name: s.User, UID: s.UID, Groups: s.Groups}
	if len(s.Extra) > 0 {
		u.Extra = make(map[string][]string, len(s.Extra))
		for k, v := range s.Extra {
			u.Extra[k] = v
		}
	}
	a := authorizer.AttributesRecord{User: u}
	if ra := s.ResourceAttributes; ra != nil {
		a.ResourceRequest = true
		a.Verb, a.Namespace, a.APIGroup, a.APIVersion = ra.Verb, ra.Namespace, ra.Group, ra.Version
		a.Resource, a.Subresource, a.Name = ra.Resource, ra.Subresource, ra.Name
		a.FieldSelectorRequirements, a.FieldSelectorParsingErr = fieldSelector(ra.FieldSelector)
		a.LabelSelectorRequirements, a.LabelSelectorParsingErr = labelSelector(ra.LabelSelector)
	} else if nra := s.NonResourceAttributes; nra != nil {
		a.Verb, a.Path = nra.Verb, nra.Path
	}
	return a
}

func resourceString(a authorizer.AttributesRecord) string {
	r := a.Resource
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.APIGroup != "" {
		r += "." + a.APIGroup
	}
	if a.Name != "" {
		r += "/" + a.Name
	}
	return r
}

// fieldSelector reads a review's field selector as the API server's own
// SubjectAccessReview endpoint does (k8s.io/kubernetes
// pkg/registry/authorization/util, which this module cannot import): the
// raw selector parsed, or the requirements, In and NotIn with one value
// becoming = and !=. Requirements it cannot read are dropped with an
// error; requirements only narrow a request, so dropping one widens it,
// and a Deny then covers more, never less.
func fieldSelector(in *authorizationv1.FieldSelectorAttributes) (fields.Requirements, error) {
	if in == nil {
		return nil, nil
	}
	if len(in.Requirements) == 0 {
		if in.RawSelector == "" {
			return nil, nil
		}
		sel, err := fields.ParseSelector(in.RawSelector)
		if err != nil {
			return nil, err
		}
		return sel.Requirements(), nil
	}
	var (
		reqs fields.Requirements
		errs []error
	)
	for _, r := range in.Requirements {
		op := map[metav1.FieldSelectorOperator]selection.Operator{metav1.FieldSelectorOpIn: selection.Equals, metav1.FieldSelectorOpNotIn: selection.NotEquals}[r.Operator]
		if op == "" || len(r.Values) != 1 {
			errs = append(errs, fmt.Errorf("field selector %s %s %v: only in and notin with one value are supported", r.Key, r.Operator, r.Values))
			continue
		}
		reqs = append(reqs, fields.Requirement{Field: r.Key, Operator: op, Value: r.Values[0]})
	}
	return reqs, utilerrors.NewAggregate(errs)
}

// labelSelector reads a review's label selector the same way.
func labelSelector(in *authorizationv1.LabelSelectorAttributes) (labels.Requirements, error) {
	if in == nil {
		return nil, nil
	}
	if len(in.Requirements) == 0 {
		if in.RawSelector == "" {
			return nil, nil
		}
		sel, err := labels.Parse(in.RawSelector)
		if err != nil {
			return nil, err
		}
		reqs, _ := sel.Requirements()
		return reqs, nil
	}
	var (
		reqs labels.Requirements
		errs []error
	)
	for _, r := range in.Requirements {
		op := map[metav1.LabelSelectorOperator]selection.Operator{
			metav1.LabelSelectorOpIn: selection.In, metav1.LabelSelectorOpNotIn: selection.NotIn,
			metav1.LabelSelectorOpExists: selection.Exists, metav1.LabelSelectorOpDoesNotExist: selection.DoesNotExist,
		}[r.Operator]
		if op == "" {
			errs = append(errs, fmt.Errorf("label selector operator %q is not valid", r.Operator))
			continue
		}
		values := r.Values
		if len(values) == 0 {
			values = nil
		}
		req, err := labels.NewRequirement(r.Key, op, values)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reqs = append(reqs, *req)
	}
	return reqs, utilerrors.NewAggregate(errs)
}
