package authz

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

// Unreached lists what of the policy never applies, because the API
// server never asks the webhook about it: a subject that is system:masters
// (allowed before any authorizer is asked) or an identity the rendered
// wiring excludes (x: the operator's own service account, the control
// plane's components, kube-system's service accounts), and a rule on the
// health endpoints for an anonymous subject (the wiring keeps anonymous
// GETs of them from the webhook). For those requests RBAC decides,
// whatever the policy says. Each entry is a sentence for the policy's
// status and the warnings of kubectl apply; none for a policy that
// applies whole.
func (p *Policy) Unreached(x apiserverconfig.Exclusions) []string {
	var notes []string
	for _, u := range p.users {
		if x.User(u) {
			notes = append(notes, fmt.Sprintf("user %q is never sent to the authorization webhook (the wiring's matchConditions exclude it, so that the cluster's own controllers and the operator are never locked out): RBAC decides for it", u))
		}
	}
	for _, g := range p.groups {
		switch ns, ok := strings.CutPrefix(g, serviceaccount.ServiceAccountGroupPrefix); {
		case g == user.SystemPrivilegedGroup:
			notes = append(notes, fmt.Sprintf("group %q is allowed by the API server before any authorizer is asked: the policy never applies to its members", g))
		case ok && x.ServiceAccounts(ns):
			notes = append(notes, fmt.Sprintf("the service accounts of namespace %q are never sent to the authorization webhook (the wiring's matchConditions exclude them): RBAC decides for them", ns))
		}
	}
	if slices.Contains(p.users, user.Anonymous) || slices.Contains(p.groups, user.AllUnauthenticated) {
		for _, r := range p.rules {
			if !r.verbs.has("get") {
				continue
			}
			for _, u := range r.urls {
				if coversHealthProbe(u) {
					notes = append(notes, fmt.Sprintf("anonymous GETs of the health endpoints (%s, and below /healthz/, /livez/, /readyz/) are never sent to the authorization webhook, so that probes pass while Portcullis is down: nonResourceURLs %q does not apply to them", strings.Join(apiserverconfig.HealthProbePaths, ", "), u.String()))
				}
			}
		}
	}
	return notes
}

// coversHealthProbe reports whether u matches a path HealthProbe excludes.
func coversHealthProbe(u nonResourceURL) bool {
	if !u.prefix {
		return apiserverconfig.HealthProbe(u.path)
	}
	for _, p := range apiserverconfig.HealthProbePaths {
		if strings.HasPrefix(p, u.path) {
			return true
		}
	}
	for _, p := range apiserverconfig.HealthProbePrefixes {
		if strings.HasPrefix(p, u.path) || strings.HasPrefix(u.path, p) {
			return true
		}
	}
	return false
}

// String is the URL as the rule wrote it.
func (u nonResourceURL) String() string {
	if u.prefix {
		return u.path + wildcard
	}
	return u.path
}
