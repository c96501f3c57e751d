package authentication

import (
	"context"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"

	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/decision"
)

// Path is where the API server's token webhook kubeconfig points.
const Path = "/authenticate"

// Webhook answers TokenReviews from an authn.Engine.
type Webhook struct {
	// Engine decides. Required.
	Engine *authn.Engine
	// Recorder logs and counts decisions; nil records nothing.
	Recorder *decision.Recorder
	// Observed, when set, is called on every review: the operator uses it to
	// report that the API server has been seen calling.
	Observed func()
}

// Review decides one TokenReview. It never fails: any problem with the token
// is an unauthenticated answer.
func (w *Webhook) Review(ctx context.Context, spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus {
	start := time.Now()
	if w.Observed != nil {
		w.Observed()
	}
	if len(spec.Audiences) > 0 {
		ctx = authenticator.WithAudiences(ctx, spec.Audiences)
	}
	resp, d, ok := w.Engine.Authenticate(ctx, spec.Token)
	st := toStatus(resp, ok)
	e := decision.Entry{Phase: decision.PhaseAuthenticate, Result: "unauthenticated", Reason: d.Reason, Latency: time.Since(start)}
	if d.Kind != "" {
		e.Policy = d.Kind + "/" + d.Name
	}
	if ok {
		e.Result = "authenticated"
		e.User = st.User.Username
	}
	w.Recorder.Record(e)
	return st
}
