package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	engine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/reviewhttp"
)

// MaxRequestBodyBytes caps an AdmissionReview body. A review carries the
// object and the old object; the API server itself refuses objects over
// 1.5 MiB (etcd's limit), so two of them and the envelope fit in 7 MiB,
// the cap controller-runtime's admission webhook uses for the same reason.
const MaxRequestBodyBytes = 7 << 20

var log = ctrl.Log.WithName("webhooks").WithName("admission")

// reviewer decides one admission request. An error fails the call (HTTP
// 500) so that the webhook configuration's failurePolicy applies.
type reviewer interface {
	review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error)
}

// recorder records a decision made before review: a review refused whole.
type recorder interface {
	record(decision.Entry)
}

// serve is the shared http.Handler of /mutate and /validate.
func serve(rw http.ResponseWriter, r *http.Request, rv reviewer) {
	defer reviewhttp.Recover(rw, log, "admitting")
	body, code, err := reviewhttp.ReadBody(rw, r, MaxRequestBodyBytes, "AdmissionReview")
	defer body.Release()
	if errors.Is(err, reviewhttp.ErrTooLarge) && refuseTooLarge(rw, rv, body.Bytes(), err) {
		return
	}
	var review *admissionv1.AdmissionReview
	if err == nil {
		review, code, err = decodeBody(body.Bytes())
	}
	if err != nil {
		log.V(1).Info("bad AdmissionReview request", "error", err.Error(), "status", code)
		http.Error(rw, err.Error(), code)
		return
	}
	ctx, cancel := callDeadline(r)
	defer cancel()
	// decodeBody refused invalid JSON: the engines need not check the
	// objects again (FuzzDecodedObjectsAreValidJSON).
	resp, err := rv.review(engine.WithDecodedJSON(ctx), review.Request)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	resp.UID = review.Request.UID
	if err := reviewhttp.WriteJSON(rw, &admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}); err != nil {
		log.Error(err, "writing AdmissionReview answer")
	}
}

// refuseTooLarge answers a review over the cap with a rejection, when its
// head names its uid (the API server writes it first). Escaped as JSON, an
// object the API server accepts can make a review larger than any cap
// worth holding ("<" is written in six bytes); answered with an error, the
// webhook configuration's failurePolicy would decide, and a mutating
// webhook's Ignore skip every MutationPolicy for a request built to be
// large. Errors never open the gate: it is rejected, saying why.
func refuseTooLarge(rw http.ResponseWriter, rv reviewer, head []byte, tooLarge error) bool {
	uid := gjson.GetBytes(head[:min(len(head), 64<<10)], "request.uid").String()
	if uid == "" {
		return false
	}
	log.Info("rejected an AdmissionReview over the cap", "uid", uid, "error", tooLarge.Error())
	resp := &admissionv1.AdmissionResponse{UID: types.UID(uid), Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusRequestEntityTooLarge, Reason: metav1.StatusReasonRequestEntityTooLarge,
		Message: fmt.Sprintf("portcullis: the AdmissionReview is larger than %d bytes (the object written as JSON), so no policy could be applied: rejected", MaxRequestBodyBytes),
	}}
	if rec, ok := rv.(recorder); ok {
		// A decision like any other: logged and counted, as a request
		// built to be large is one worth seeing.
		rec.record(decision.Entry{Result: "denied", UID: uid, Reason: resp.Result.Message})
	}
	review := &admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"}, Response: resp}
	if err := reviewhttp.WriteJSON(rw, review); err != nil {
		log.Error(err, "writing AdmissionReview answer")
	}
	return true
}

// decodeBody parses an admission.k8s.io/v1 AdmissionReview: the only
// version the configurations ask for.
func decodeBody(body []byte) (*admissionv1.AdmissionReview, int, error) {
	var review admissionv1.AdmissionReview
	if err := reviewhttp.Decode(body, "AdmissionReview", &review, &review.TypeMeta); err != nil {
		return nil, http.StatusBadRequest, err
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() {
		return nil, http.StatusBadRequest, fmt.Errorf("apiVersion %q is not supported: use admission.k8s.io/v1", review.APIVersion)
	}
	switch {
	case review.Request == nil:
		return nil, http.StatusBadRequest, errors.New("the AdmissionReview has no request")
	case review.Request.UID == "":
		return nil, http.StatusBadRequest, errors.New("request.uid is empty")
	case review.Request.Operation == "":
		return nil, http.StatusBadRequest, errors.New("request.operation is empty")
	}
	return &review, http.StatusOK, nil
}

// callDeadline is the request's context with the deadline the API server
// gives the call (its "timeout" query parameter, the webhook's
// timeoutSeconds), less a margin for the answer to travel: CEL still
// running then stops with an error of its policy, which its failure policy
// handles, rather than the API server giving up on the whole call and
// applying the webhook's failure policy to every policy at once. Its
// timer starts when something first waits on it (lazyDeadline). Without
// a timeout, the request's own context: the API server always sends one,
// and the request's context is done when the caller goes away.
func callDeadline(r *http.Request) (context.Context, context.CancelFunc) {
	d, err := time.ParseDuration(queryValue(r.URL.RawQuery, "timeout"))
	if err != nil || d <= 0 {
		return r.Context(), func() {}
	}
	margin := min(d/10, 500*time.Millisecond)
	return withLazyDeadline(r.Context(), time.Now().Add(d-margin))
}

// queryValue is url.ParseQuery(raw).Get(key) without building the map of
// every parameter: the first value of key, unescaped; pairs with a
// semicolon, which ParseQuery refuses, and pairs that do not unescape are
// skipped as it skips them.
func queryValue(raw, key string) string {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil || k != key {
			continue
		}
		if v, err = url.QueryUnescape(v); err == nil {
			return v
		}
	}
	return ""
}
