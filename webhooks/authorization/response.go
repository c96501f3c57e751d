package authorization

import (
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// toStatus maps an authorizer answer to the SubjectAccessReview status the
// API server's webhook authorizer reads
// (k8s.io/apiserver/plugin/pkg/authorizer/webhook):
//
//   - Allow sets allowed; Deny sets denied; NoOpinion sets neither, so the
//     next authorizer (RBAC) decides. Never both: the API server reads
//     allowed+denied as a Deny with an error.
//   - An evaluation error goes to evaluationError alongside whatever
//     decision the engine still reached (a Deny that could not be fully
//     evaluated still denies); the API server logs it.
func toStatus(d authorizer.Decision, reason string, err error) authorizationv1.SubjectAccessReviewStatus {
	st := authorizationv1.SubjectAccessReviewStatus{Reason: reason}
	switch d {
	case authorizer.DecisionAllow:
		st.Allowed = true
	case authorizer.DecisionDeny:
		st.Denied = true
	}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

// resultName names a decision for logs and metrics.
func resultName(d authorizer.Decision) string {
	switch d {
	case authorizer.DecisionAllow:
		return "allow"
	case authorizer.DecisionDeny:
		return "deny"
	default:
		return "no-opinion"
	}
}
