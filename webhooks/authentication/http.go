package authentication

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authenticationv1beta1 "k8s.io/api/authentication/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
)

// MaxRequestBodyBytes caps a TokenReview body. A review holds one bearer
// token and a few audiences, a few KiB at most; 1 MiB leaves room for very
// large JWTs while bounding the memory a bad client can make us hold. The
// same limit as controller-runtime's admission webhook.
const MaxRequestBodyBytes = 1 << 20

var log = ctrl.Log.WithName("webhooks").WithName("authentication")

var _ http.Handler = (*Webhook)(nil)

// review is the version-independent shape of both TokenReview versions,
// which have the same fields.
type review struct {
	apiVersion string
	spec       authenticationv1.TokenReviewSpec
}

// ServeHTTP implements http.Handler.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			log.Error(fmt.Errorf("panic: %v", p), "recovered from a panic while reviewing a token")
			http.Error(rw, "internal error while reviewing the token", http.StatusInternalServerError)
		}
	}()
	rv, code, err := decode(r)
	if err != nil {
		log.V(1).Info("bad TokenReview request", "error", err.Error(), "status", code)
		http.Error(rw, err.Error(), code)
		return
	}
	status := w.Review(r.Context(), rv.spec)
	if err := encode(rw, rv.apiVersion, status); err != nil {
		log.Error(err, "writing TokenReview answer")
	}
}

// decode reads and checks a TokenReview request. The status code says
// whether the fault is the request's (400, 405, 415).
func decode(r *http.Request) (review, int, error) {
	if r.Method != http.MethodPost {
		return review{}, http.StatusMethodNotAllowed, fmt.Errorf("method %s is not allowed: POST a TokenReview", r.Method)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return review{}, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q is not supported: send application/json", ct)
		}
	}
	if r.Body == nil {
		return review{}, http.StatusBadRequest, errors.New("request body is empty: POST a TokenReview")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBodyBytes+1))
	if err != nil {
		return review{}, http.StatusBadRequest, fmt.Errorf("reading request body: %v", err)
	}
	if len(body) > MaxRequestBodyBytes {
		return review{}, http.StatusBadRequest, fmt.Errorf("request body is larger than %d bytes", MaxRequestBodyBytes)
	}
	return decodeBody(body)
}

// decodeBody parses a TokenReview of either version.
func decodeBody(body []byte) (review, int, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return review{}, http.StatusBadRequest, errors.New("request body is empty: POST a TokenReview")
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(body, &tm); err != nil {
		return review{}, http.StatusBadRequest, fmt.Errorf("request body is not a JSON object: %v", err)
	}
	if tm.Kind != "TokenReview" {
		return review{}, http.StatusBadRequest, fmt.Errorf("kind %q is not supported: send a TokenReview", tm.Kind)
	}
	rv := review{apiVersion: tm.APIVersion}
	switch tm.APIVersion {
	case authenticationv1.SchemeGroupVersion.String():
		var tr authenticationv1.TokenReview
		if err := json.Unmarshal(body, &tr); err != nil {
			return review{}, http.StatusBadRequest, fmt.Errorf("decoding TokenReview: %v", err)
		}
		rv.spec = tr.Spec
	case authenticationv1beta1.SchemeGroupVersion.String():
		var tr authenticationv1beta1.TokenReview
		if err := json.Unmarshal(body, &tr); err != nil {
			return review{}, http.StatusBadRequest, fmt.Errorf("decoding TokenReview: %v", err)
		}
		rv.spec = authenticationv1.TokenReviewSpec{Token: tr.Spec.Token, Audiences: tr.Spec.Audiences}
	default:
		return review{}, http.StatusBadRequest, fmt.Errorf("apiVersion %q is not supported: use authentication.k8s.io/v1 or v1beta1", tm.APIVersion)
	}
	if rv.spec.Token == "" {
		return review{}, http.StatusBadRequest, errors.New("spec.token is empty")
	}
	return rv, http.StatusOK, nil
}

// encode writes the answer in the version the request used.
func encode(rw http.ResponseWriter, apiVersion string, st authenticationv1.TokenReviewStatus) error {
	var out any
	if apiVersion == authenticationv1beta1.SchemeGroupVersion.String() {
		b := &authenticationv1beta1.TokenReview{
			TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "TokenReview"},
			Status: authenticationv1beta1.TokenReviewStatus{
				Authenticated: st.Authenticated,
				User: authenticationv1beta1.UserInfo{
					Username: st.User.Username, UID: st.User.UID, Groups: st.User.Groups,
				},
				Audiences: st.Audiences,
				Error:     st.Error,
			},
		}
		if len(st.User.Extra) > 0 {
			b.Status.User.Extra = make(map[string]authenticationv1beta1.ExtraValue, len(st.User.Extra))
			for k, v := range st.User.Extra {
				b.Status.User.Extra[k] = authenticationv1beta1.ExtraValue(v)
			}
		}
		out = b
	} else {
		out = &authenticationv1.TokenReview{
			TypeMeta: metav1.TypeMeta{APIVersion: authenticationv1.SchemeGroupVersion.String(), Kind: "TokenReview"},
			Status:   st,
		}
	}
	// Encode fully before writing, so a failure never leaves half an answer.
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(rw, "encoding the answer failed", http.StatusInternalServerError)
		return err
	}
	rw.Header().Set("Content-Type", "application/json")
	_, err = rw.Write(b)
	return err
}
