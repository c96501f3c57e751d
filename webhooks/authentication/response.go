package authentication

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// toStatus turns the engine's answer into a TokenReview status.
//
// A token that is not ours, expired, disabled or badly signed is
// authenticated=false with no error: the API server treats a non-empty
// status.error as a failure of the webhook itself, and the client must not
// learn which check failed.
//
// Audiences are the engine's, never the ones asked for: static tokens
// name none, JWTs those of the review they are valid for. The API server
// intersects what it asked for with status.audiences, or, when that is
// empty, with its own implicit audiences (its --api-audiences), as it
// treats its own audience-agnostic authenticators; so a token is accepted
// for the Kubernetes API, and a TokenReview asking about another service's
// audience is not authenticated.
func toStatus(resp *authenticator.Response, ok bool) authenticationv1.TokenReviewStatus {
	if !ok || resp == nil || resp.User == nil {
		return authenticationv1.TokenReviewStatus{Authenticated: false}
	}
	u := resp.User
	st := authenticationv1.TokenReviewStatus{
		Authenticated: true,
		User: authenticationv1.UserInfo{
			Username: u.GetName(),
			UID:      u.GetUID(),
			Groups:   append([]string(nil), u.GetGroups()...),
		},
	}
	if extra := u.GetExtra(); len(extra) > 0 {
		st.User.Extra = make(map[string]authenticationv1.ExtraValue, len(extra))
		for k, v := range extra {
			st.User.Extra[k] = append(authenticationv1.ExtraValue(nil), v...)
		}
	}
	if len(resp.Audiences) > 0 {
		st.Audiences = append([]string(nil), resp.Audiences...)
	}
	return st
}
