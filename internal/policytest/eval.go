package policytest

import (
	"context"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// LoadObjects loads the policies and objects of paths (files, or
// directories not searched below) for Eval.
func LoadObjects(paths []string) (*Objects, error) {
	l := &loader{docs: map[string][]document{}}
	return l.objects(".", paths)
}

// Eval answers one input, in YAML or JSON, with the policies of objs: a
// TokenReview (authentication), a SubjectAccessReview (authorization), an
// AdmissionReview (its request through admission), or any other object
// (its CREATE through admission, by the user "test-user").
func Eval(ctx context.Context, objs *Objects, input []byte) (Result, error) {
	data, err := yaml.YAMLToJSON(input)
	if err != nil {
		return Result{}, err
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e, err := build(ctx, objs)
	if err != nil {
		return Result{}, err
	}
	switch {
	case tm.Kind == "TokenReview" && tm.APIVersion == authenticationv1.SchemeGroupVersion.String():
		var tr authenticationv1.TokenReview
		if err := strict(data, &tr); err != nil {
			return Result{}, err
		}
		return e.authenticate(ctx, &AuthenticationInput{Token: tr.Spec.Token, Audiences: tr.Spec.Audiences}, Expect{}), nil
	case tm.Kind == "SubjectAccessReview" && tm.APIVersion == authorizationv1.SchemeGroupVersion.String():
		var sar authorizationv1.SubjectAccessReview
		if err := strict(data, &sar); err != nil {
			return Result{}, err
		}
		return e.authorize(ctx, &AuthorizationInput{SubjectAccessReview: &sar.Spec}, Expect{}), nil
	case tm.Kind == "AdmissionReview" && tm.APIVersion == admissionv1.SchemeGroupVersion.String():
		var ar admissionv1.AdmissionReview
		if err := strict(data, &ar); err != nil {
			return Result{}, err
		}
		if ar.Request == nil {
			return Result{}, errors.New("the AdmissionReview has no request")
		}
		r, _ := e.admitRequest(ctx, ar.Request)
		return r, nil
	case tm.Kind == "" || tm.APIVersion == "":
		return Result{}, fmt.Errorf("the input has no apiVersion or kind: give a TokenReview, a SubjectAccessReview, an AdmissionReview or an object")
	}
	var obj map[string]any
	if err := strict(data, &obj); err != nil { // integers stay int64
		return Result{}, err
	}
	req, err := admissionRequest(&AdmissionInput{Object: obj})
	if err != nil {
		return Result{}, err
	}
	r, _ := e.admitRequest(ctx, req)
	return r, nil
}
