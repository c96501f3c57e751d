package apiserverconfig

import (
	"slices"
	"strings"
)

// HealthProbePaths are the health and version endpoints whose anonymous
// GETs the rendered authorization wiring never sends to the webhook, and
// HealthProbePrefixes the subtrees (/readyz/etcd) likewise: the kubelet,
// load balancers and the API server's own start-up check make them, and
// RBAC opens them to everyone (system:public-info-viewer). With
// failurePolicy Deny and Portcullis down they would be refused and the API
// server reported dead. An authenticated user's request to them is sent.
var (
	HealthProbePaths    = []string{"/healthz", "/livez", "/readyz", "/version", "/version/"}
	HealthProbePrefixes = []string{"/healthz/", "/livez/", "/readyz/"}
)

// Exclusions are the requests the rendered authorization wiring keeps from
// the webhook (its matchConditions), so that no AccessPolicy applies to
// them: RBAC decides. Requests of system:masters never reach any
// authorizer, whatever the wiring.
type Exclusions struct {
	// Users are never sent.
	Users []string
	// ServiceAccountNamespaces: no service account of these is sent.
	ServiceAccountNamespaces []string
}

// Exclusions returns what the wiring these options render keeps from the
// webhook, or an error naming the invalid field.
func (a AuthorizationOptions) Exclusions() (Exclusions, error) {
	d, err := a.withDefaults()
	if err != nil {
		return Exclusions{}, err
	}
	return Exclusions{Users: d.ExcludedUsers, ServiceAccountNamespaces: d.ExcludedServiceAccountNamespaces}, nil
}

// User reports whether requests of username are never sent.
func (e Exclusions) User(username string) bool {
	if slices.Contains(e.Users, username) {
		return true
	}
	for _, ns := range e.ServiceAccountNamespaces {
		if strings.HasPrefix(username, ServiceAccountUsername(ns, "")) {
			return true
		}
	}
	return false
}

// ServiceAccounts reports whether no service account of namespace is sent.
func (e Exclusions) ServiceAccounts(namespace string) bool {
	return slices.Contains(e.ServiceAccountNamespaces, namespace)
}

// HealthProbe reports whether an anonymous GET of path is never sent.
func HealthProbe(path string) bool {
	if slices.Contains(HealthProbePaths, path) {
		return true
	}
	for _, p := range HealthProbePrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// renderHealthProbes is HealthProbe for anonymous GETs, as a matchCondition term.
func renderHealthProbes() string {
	paths := make([]string, len(HealthProbePaths))
	for i, p := range HealthProbePaths {
		paths[i] = celString(p)
	}
	terms := []string{"request.nonResourceAttributes.path in [" + strings.Join(paths, ", ") + "]"}
	for _, p := range HealthProbePrefixes {
		terms = append(terms, "request.nonResourceAttributes.path.startsWith("+celString(p)+")")
	}
	return "'system:unauthenticated' in request.groups && has(request.nonResourceAttributes) && request.nonResourceAttributes.verb == 'get' && (" +
		strings.Join(terms, " || ") + ")"
}
