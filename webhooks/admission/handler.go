package admission

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Handler serves h, written to controller-runtime's typed admission API,
// with the HTTP stack /mutate and /validate use (serve): the same body
// cap, deadlines, decoding, version checks and panic handling, so that
// every admission path the operator serves reads and answers a review
// the same way. h's answer is completed as controller-runtime completes
// it (its JSON patches encoded, the UID set); a panic, or a patch that
// cannot be encoded, fails the call (HTTP 500) and the webhook
// configuration's failurePolicy applies, where controller-runtime's own
// Webhook would answer allowed: false.
func Handler(h cradmission.Handler) http.Handler { return typedHandler{h} }

type typedHandler struct{ h cradmission.Handler }

func (t typedHandler) ServeHTTP(rw http.ResponseWriter, r *http.Request) { serve(rw, r, t) }

func (t typedHandler) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	creq := cradmission.Request{AdmissionRequest: *req}
	resp := t.h.Handle(ctx, creq)
	if err := resp.Complete(creq); err != nil {
		return nil, fmt.Errorf("encoding the answer's patch: %w", err)
	}
	return &resp.AdmissionResponse, nil
}
