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
// learn which check failed. Audiences: the API server intersects the
// audiences it asked for with status.audiences; our tokens are not bound to
// API server audiences, so we answer with the audiences we were asked for,
// as the API server does for its own audience-agnostic authenticators.
func toStatus(resp *authenticator.Response, ok bool, audiences []string) authenticationv1.TokenReviewStatus {
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
		Audiences: append([]string(nil), audiences...),
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
