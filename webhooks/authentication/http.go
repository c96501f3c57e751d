package authentication

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authenticationv1beta1 "k8s.io/api/authentication/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/portcullis-io/portcullis/internal/reviewhttp"
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
	defer reviewhttp.Recover(rw, log, "reviewing a token")
	body, code, err := reviewhttp.ReadBody(rw, r, MaxRequestBodyBytes, "TokenReview")
	defer body.Release()
	var rv review
	if err == nil {
		rv, code, err = decodeBody(body.Bytes())
	}
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

// decodeBody parses a TokenReview of either version.
func decodeBody(body []byte) (review, int, error) {
	// v1, what API servers send, in one pass; v1beta1 again.
	var tr authenticationv1.TokenReview
	if err := reviewhttp.Decode(body, "TokenReview", &tr, &tr.TypeMeta); err != nil {
		return review{}, http.StatusBadRequest, err
	}
	rv := review{apiVersion: tr.APIVersion}
	switch tr.APIVersion {
	case authenticationv1.SchemeGroupVersion.String():
		rv.spec = tr.Spec
	case authenticationv1beta1.SchemeGroupVersion.String():
		var b authenticationv1beta1.TokenReview
		if err := json.Unmarshal(body, &b); err != nil {
			return review{}, http.StatusBadRequest, fmt.Errorf("decoding TokenReview: %v", err)
		}
		rv.spec = authenticationv1.TokenReviewSpec{Token: b.Spec.Token, Audiences: b.Spec.Audiences}
	default:
		return review{}, http.StatusBadRequest, fmt.Errorf("apiVersion %q is not supported: use authentication.k8s.io/v1 or v1beta1", tr.APIVersion)
	}
	if rv.spec.Token == "" {
		return review{}, http.StatusBadRequest, errors.New("spec.token is empty")
	}
	return rv, http.StatusOK, nil
}

// encode writes the answer in the version the request used.
func encode(rw http.ResponseWriter, apiVersion string, st authenticationv1.TokenReviewStatus) error {
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
		return reviewhttp.WriteJSON(rw, b)
	}
	return reviewhttp.WriteJSON(rw, &authenticationv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: authenticationv1.SchemeGroupVersion.String(), Kind: "TokenReview"},
		Status:   st,
	})
}
