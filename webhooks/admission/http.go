package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
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

// serve is the shared http.Handler of /mutate and /validate.
func serve(rw http.ResponseWriter, r *http.Request, rv reviewer) {
	defer func() {
		if p := recover(); p != nil {
			log.Error(fmt.Errorf("panic: %v", p), "recovered from a panic in admission")
			http.Error(rw, "internal error in the admission webhook", http.StatusInternalServerError)
		}
	}()
	review, code, err := decode(r)
	if err != nil {
		log.V(1).Info("bad AdmissionReview request", "error", err.Error(), "status", code)
		http.Error(rw, err.Error(), code)
		return
	}
	resp, err := rv.review(r.Context(), review.Request)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(rw, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	if _, err := rw.Write(b); err != nil {
		log.Error(err, "writing AdmissionReview answer")
	}
}

func decode(r *http.Request) (*admissionv1.AdmissionReview, int, error) {
	if r.Method != http.MethodPost {
		return nil, http.StatusMethodNotAllowed, fmt.Errorf("method %s is not allowed: POST an AdmissionReview", r.Method)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q is not supported: send application/json", ct)
		}
	}
	if r.Body == nil {
		return nil, http.StatusBadRequest, errors.New("request body is empty: POST an AdmissionReview")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBodyBytes+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading request body: %v", err)
	}
	if len(body) > MaxRequestBodyBytes {
		return nil, http.StatusBadRequest, fmt.Errorf("request body is larger than %d bytes", MaxRequestBodyBytes)
	}
	return decodeBody(body)
}

// decodeBody parses an admission.k8s.io/v1 AdmissionReview: the only
// version the configurations ask for.
func decodeBody(body []byte) (*admissionv1.AdmissionReview, int, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, http.StatusBadRequest, errors.New("request body is empty: POST an AdmissionReview")
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(body, &tm); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("request body is not a JSON object: %v", err)
	}
	if tm.Kind != "AdmissionReview" {
		return nil, http.StatusBadRequest, fmt.Errorf("kind %q is not supported: send an AdmissionReview", tm.Kind)
	}
	if tm.APIVersion != admissionv1.SchemeGroupVersion.String() {
		return nil, http.StatusBadRequest, fmt.Errorf("apiVersion %q is not supported: use admission.k8s.io/v1", tm.APIVersion)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("decoding AdmissionReview: %v", err)
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
