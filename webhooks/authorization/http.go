package authorization

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	authorizationv1 "k8s.io/api/authorization/v1"
	authorizationv1beta1 "k8s.io/api/authorization/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/reviewhttp"
)

// MaxRequestBodyBytes caps a SubjectAccessReview body. A review is a user,
// groups, extra and one request's attributes, a few KiB; but its attributes
// come from a request whose line and headers the API server accepts up to
// 1 MiB (Go's http.Server default, which kube-apiserver keeps), and JSON
// writes a byte of them in up to six ("<" is \u003c, a byte that is not
// UTF-8 \ufffd): a field selector of 180,000 "<" makes a review of 1 MiB.
// 8 MiB holds whatever review the API server can send; a larger one is
// denied (see ServeHTTP), not answered with an error, which the API server
// would turn into its failurePolicy: with NoOpinion, RBAC alone, and every
// Deny policy skipped by a request built to be large.
const MaxRequestBodyBytes = 8 << 20

var log = ctrl.Log.WithName("webhooks").WithName("authorization")

var _ http.Handler = (*Webhook)(nil)

// review is a decoded SubjectAccessReview of either version, as v1.
type review struct {
	apiVersion string
	sar        authorizationv1.SubjectAccessReview
}

// ServeHTTP implements http.Handler.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	defer reviewhttp.Recover(rw, log, "authorizing")
	body, code, err := reviewhttp.ReadBody(rw, r, MaxRequestBodyBytes, "SubjectAccessReview")
	defer body.Release()
	if errors.Is(err, reviewhttp.ErrTooLarge) {
		// Errors never open the gate: no request the API server can send
		// is this large, so deny it rather than let the failure policy
		// decide.
		log.Info("denied a SubjectAccessReview over the cap", "error", err.Error())
		st := authorizationv1.SubjectAccessReviewStatus{Denied: true, Reason: "the SubjectAccessReview is larger than any the API server sends: denied", EvaluationError: err.Error()}
		w.Recorder.Record(decision.Entry{Phase: decision.PhaseAuthorize, Result: "deny", Reason: st.Reason})
		if err := encode(rw, authorizationv1.SchemeGroupVersion.String(), st); err != nil {
			log.Error(err, "writing SubjectAccessReview answer")
		}
		return
	}
	var rv review
	if err == nil {
		rv, code, err = decodeBody(body.Bytes())
	}
	if err != nil {
		log.V(1).Info("bad SubjectAccessReview request", "error", err.Error(), "status", code)
		http.Error(rw, err.Error(), code)
		return
	}
	status := w.Review(r.Context(), &rv.sar)
	if err := encode(rw, rv.apiVersion, status); err != nil {
		log.Error(err, "writing SubjectAccessReview answer")
	}
}

// decodeBody parses a SubjectAccessReview of either version.
func decodeBody(body []byte) (review, int, error) {
	// v1, what API servers send, in one pass; v1beta1 again.
	var rv review
	if err := reviewhttp.Decode(body, "SubjectAccessReview", &rv.sar, &rv.sar.TypeMeta); err != nil {
		return review{}, http.StatusBadRequest, err
	}
	rv.apiVersion = rv.sar.APIVersion
	switch rv.apiVersion {
	case authorizationv1.SchemeGroupVersion.String():
	case authorizationv1beta1.SchemeGroupVersion.String():
		// v1beta1 differs on the wire: groups are "group".
		var b authorizationv1beta1.SubjectAccessReview
		if err := json.Unmarshal(body, &b); err != nil {
			return review{}, http.StatusBadRequest, fmt.Errorf("decoding SubjectAccessReview: %v", err)
		}
		rv.sar = fromV1beta1(&b)
	default:
		return review{}, http.StatusBadRequest, fmt.Errorf("apiVersion %q is not supported: use authorization.k8s.io/v1 or v1beta1", rv.apiVersion)
	}
	s := rv.sar.Spec
	switch {
	case s.ResourceAttributes == nil && s.NonResourceAttributes == nil:
		return review{}, http.StatusBadRequest, errors.New("spec has neither resourceAttributes nor nonResourceAttributes")
	case s.ResourceAttributes != nil && s.NonResourceAttributes != nil:
		return review{}, http.StatusBadRequest, errors.New("spec has both resourceAttributes and nonResourceAttributes")
	case s.User == "" && len(s.Groups) == 0:
		return review{}, http.StatusBadRequest, errors.New("spec.user and spec.groups are both empty")
	}
	return rv, http.StatusOK, nil
}

// encode writes the answer in the version the request used.
func encode(rw http.ResponseWriter, apiVersion string, st authorizationv1.SubjectAccessReviewStatus) error {
	if apiVersion != authorizationv1beta1.SchemeGroupVersion.String() {
		apiVersion = authorizationv1.SchemeGroupVersion.String()
	}
	// The status has the same JSON shape in both versions.
	out := struct {
		metav1.TypeMeta `json:",inline"`
		Status          authorizationv1.SubjectAccessReviewStatus `json:"status"`
	}{TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "SubjectAccessReview"}, Status: st}
	return reviewhttp.WriteJSON(rw, out)
}

func fromV1beta1(b *authorizationv1beta1.SubjectAccessReview) authorizationv1.SubjectAccessReview {
	out := authorizationv1.SubjectAccessReview{ObjectMeta: b.ObjectMeta}
	out.Spec.User, out.Spec.Groups, out.Spec.UID = b.Spec.User, b.Spec.Groups, b.Spec.UID
	if len(b.Spec.Extra) > 0 {
		out.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(b.Spec.Extra))
		for k, v := range b.Spec.Extra {
			out.Spec.Extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	if ra := b.Spec.ResourceAttributes; ra != nil {
		out.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
			Namespace: ra.Namespace, Verb: ra.Verb, Group: ra.Group, Version: ra.Version,
			Resource: ra.Resource, Subresource: ra.Subresource, Name: ra.Name,
			// The selectors are v1's types in v1beta1 too; a Deny that a
			// field selector keeps away from its names depends on them.
			FieldSelector: ra.FieldSelector.DeepCopy(), LabelSelector: ra.LabelSelector.DeepCopy(),
		}
	}
	if nra := b.Spec.NonResourceAttributes; nra != nil {
		out.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: nra.Path, Verb: nra.Verb}
	}
	return out
}
