package authz

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apiserver/pkg/authentication/serviceaccount"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// subjectKind says which index a subject key belongs to.
type subjectKind uint8

const (
	subjectUser subjectKind = iota
	subjectGroup
)

// subjectKey is one index key: a user name or a group name. ServiceAccount
// subjects are stored as the user or group the API server gives them.
type subjectKey struct {
	kind subjectKind
	name string
}

// subjectKeys lists the keys a policy is indexed under.
func (p *Policy) subjectKeys() []subjectKey {
	keys := make([]subjectKey, 0, len(p.users)+len(p.groups))
	for _, u := range p.users {
		keys = append(keys, subjectKey{subjectUser, u})
	}
	for _, g := range p.groups {
		keys = append(keys, subjectKey{subjectGroup, g})
	}
	return keys
}

// resourceKey files a resource rule by API group and resource, either of
// which may be "*". A request looks up at most four keys: its own group and
// resource, each with and without the wildcard.
type resourceKey struct {
	group, resource string
}

// resourceEntry is one (rule, resource form) filed under a resourceKey; the
// key already matched the group and resource, so only the subresource,
// verb, namespace and name remain to check.
type resourceEntry struct {
	policy *Policy
	rule   *rule
	form   resourceForm
}

func (e *resourceEntry) matches(r *request) bool {
	if e.policy.Effect == authzv1alpha1.EffectDeny {
		return e.form.meetsSubresource(r) && r.verbMeets(&e.rule.verbs) && e.rule.coversNamespace(r) && e.rule.coversName(r)
	}
	if !e.form.matchesSubresource(r.subresource) || !e.rule.verbs.has(r.verb) {
		return false
	}
	// As in RBAC, a rule with resourceNames does not match a request
	// without a name (list, create, deletecollection): "" is never in the
	// set, Compile refuses it.
	return e.rule.allowsNamespace(r) && e.rule.resourceNames.has(r.name)
}

// allowsNamespace is an Allow rule's namespace test: its namespaces, where
// "" stands for cluster-scoped requests only. A request without a
// namespace of anything else (a list of Secrets across every namespace, a
// review of every resource) is allowed only by a rule of every namespace.
func (ru *rule) allowsNamespace(r *request) bool {
	if r.namespace == "" && !r.clusterScoped {
		return ru.namespaces.any
	}
	return ru.namespaces.has(r.namespace)
}

// verbMeets is a Deny rule's verb test: its verbs, and a review of every
// verb ("*"), whose answer includes each of them.
func (r *request) verbMeets(verbs *stringSet) bool {
	return r.verb == wildcard || verbs.has(r.verb)
}

// meetsSubresource is a Deny form's subresource test: the form's own, and
// a review of every subresource ("pods/*") or of every resource and
// subresource ("*"), which includes those the form covers.
func (f *resourceForm) meetsSubresource(r *request) bool {
	switch {
	case r.subresource == allSubresources:
		return f.match != subNone
	case r.resource == wildcard && r.subresource == "":
		return true
	}
	return f.matchesSubresource(r.subresource)
}

// coversNamespace is a Deny rule's namespace test: its namespaces, and a
// request or review across every namespace when that can include one of
// them.
func (ru *rule) coversNamespace(r *request) bool {
	return ru.namespaces.has(r.namespace) || (r.allNamespaces && anyIn(r.namespaces, &ru.namespaces))
}

// coversName is a Deny rule's name test: its resourceNames, and a request
// or review without a name, whose answer holds every name (a collection
// not restricted to other names, a review of a get, update or delete of
// any object); except a create, which names no existing object: the API
// server does not know the new object's name when it asks, and RBAC does
// not restrict a create by name either.
func (ru *rule) coversName(r *request) bool {
	return ru.resourceNames.has(r.name) || (r.name == "" && r.verb != "create" && anyIn(r.names, &ru.resourceNames))
}

// matchesURL is the RBAC test of a non-resource entry: the verb, and the
// path exactly (exact is the path an exact entry is filed under) or, for
// a prefix entry (exact ""), by its prefix.
func (e *nonResourceEntry) matchesURL(r *request, exact string) bool {
	if !e.rule.verbs.has(r.verb) {
		return false
	}
	if exact != "" {
		return r.path == exact
	}
	return strings.HasPrefix(r.path, e.prefix)
}

// meetsURL is a Deny's test of the same entry: also a review of every
// verb, and a review of a path ending in "*" (every path with that
// prefix), which includes the entry's path or some of its prefix's.
func (e *nonResourceEntry) meetsURL(r *request, exact string) bool {
	if !r.verbMeets(&e.rule.verbs) {
		return false
	}
	q, wide := strings.CutSuffix(r.path, wildcard)
	switch {
	case exact != "" && wide:
		return strings.HasPrefix(exact, q)
	case exact != "":
		return r.path == exact
	case wide:
		return strings.HasPrefix(e.prefix, q) || strings.HasPrefix(q, e.prefix)
	}
	return strings.HasPrefix(r.path, e.prefix)
}

// wide reports whether r is a review of more than one request in a way
// the index cannot look up by key: a wildcard verb, path, API group or
// resource. Requests the API server authorizes carry none of them; a
// SubjectAccessReview (kubectl auth can-i, an escalation check) may.
func (r *request) wide() bool {
	if r.verb == wildcard {
		return true
	}
	if !r.isResource {
		return strings.HasSuffix(r.path, wildcard)
	}
	return r.apiGroup == wildcard || r.resource == wildcard
}

// nonResourceEntry is one non-resource URL of a rule.
type nonResourceEntry struct {
	policy *Policy
	rule   *rule
	prefix string // for prefix entries; exact entries are keyed by path
}

// bucket holds every rule of every policy that names one subject. It is
// immutable once built; a change to one of its policies builds a new one.
type bucket struct {
	resources   map[resourceKey][]resourceEntry
	urls        map[string][]nonResourceEntry // exact paths
	urlPrefixes []nonResourceEntry            // paths ending in "*"
}

// buildBucket files the rules of policies, which are sorted by name.
func buildBucket(policies []*Policy) *bucket {
	b := &bucket{}
	for _, p := range policies {
		for _, ru := range p.rules {
			for _, u := range ru.urls {
				if u.prefix {
					b.urlPrefixes = append(b.urlPrefixes, nonResourceEntry{policy: p, rule: ru, prefix: u.path})
					continue
				}
				if b.urls == nil {
					b.urls = map[string][]nonResourceEntry{}
				}
				b.urls[u.path] = append(b.urls[u.path], nonResourceEntry{policy: p, rule: ru})
			}
			for _, g := range ru.apiGroups {
				for _, f := range ru.resources {
					if b.resources == nil {
						b.resources = map[resourceKey][]resourceEntry{}
					}
					k := resourceKey{g, f.resource}
					b.resources[k] = append(b.resources[k], resourceEntry{policy: p, rule: ru, form: f})
				}
			}
		}
	}
	return b
}

// collect appends to list every policy with a rule of b that matches r.
func (b *bucket) collect(r *request, list []*Policy) []*Policy {
	if r.wide() {
		return b.collectWide(r, list)
	}
	if !r.isResource {
		exact := b.urls[r.path]
		for i := range exact {
			if e := &exact[i]; e.matchesURL(r, r.path) {
				list = addCandidate(list, e.policy)
			}
		}
		for i := range b.urlPrefixes {
			if e := &b.urlPrefixes[i]; e.matchesURL(r, "") {
				list = addCandidate(list, e.policy)
			}
		}
		return list
	}
	if len(b.resources) == 0 {
		return list
	}
	for _, g := range [2]string{r.apiGroup, wildcard} {
		for _, res := range [2]string{r.resource, wildcard} {
			entries := b.resources[resourceKey{g, res}]
			for i := range entries {
				if e := &entries[i]; e.matches(r) {
					list = addCandidate(list, e.policy)
				}
			}
		}
	}
	return list
}

// collectWide is collect for a wide review: every entry of b is tried, an
// Allow's as RBAC matches it (a wildcard in the review only matches a
// wildcard in the rule), a Deny's whenever what the review asks about
// includes some of what the rule denies.
func (b *bucket) collectWide(r *request, list []*Policy) []*Policy {
	if !r.isResource {
		for path, entries := range b.urls {
			for i := range entries {
				if e := &entries[i]; e.meetsOrMatches(r, path) {
					list = addCandidate(list, e.policy)
				}
			}
		}
		for i := range b.urlPrefixes {
			if e := &b.urlPrefixes[i]; e.meetsOrMatches(r, "") {
				list = addCandidate(list, e.policy)
			}
		}
		return list
	}
	for k, entries := range b.resources {
		keyed := (k.group == r.apiGroup || k.group == wildcard) && (k.resource == r.resource || k.resource == wildcard)
		meets := (r.apiGroup == wildcard || k.group == wildcard || k.group == r.apiGroup) &&
			(r.resource == wildcard || k.resource == wildcard || k.resource == r.resource)
		for i := range entries {
			e := &entries[i]
			if deny := e.policy.Effect == authzv1alpha1.EffectDeny; (keyed || deny && meets) && e.matches(r) {
				list = addCandidate(list, e.policy)
			}
		}
	}
	return list
}

// meetsOrMatches is meetsURL for a Deny's entry, matchesURL for an Allow's.
func (e *nonResourceEntry) meetsOrMatches(r *request, exactPath string) bool {
	if e.policy.Effect == authzv1alpha1.EffectDeny {
		return e.meetsURL(r, exactPath)
	}
	return e.matchesURL(r, exactPath)
}

// index is the subject → bucket part of a Snapshot. Its maps are never
// written once published: the registry clones them before a change.
type index struct {
	users  map[string]*bucket
	groups map[string]*bucket
}

// collect appends to list every policy with a rule that matches r for the
// user name with groups.
func (ix *index) collect(name string, groups []string, r *request, list []*Policy) []*Policy {
	if b := ix.users[name]; b != nil {
		list = b.collect(r, list)
	}
	if len(ix.groups) == 0 {
		return list
	}
	for _, g := range groups {
		if b := ix.groups[g]; b != nil {
			list = b.collect(r, list)
		}
	}
	// A ServiceAccount subject named "*" is filed under its namespace's
	// group. A service-account user always carries that group when the
	// API server authenticated it; look it up anyway when the request
	// lacks it, so that a Deny on every service account of a namespace
	// holds even for a review that names only the user.
	if ns, ok := serviceAccountNamespace(name); ok && !hasServiceAccountGroup(groups, ns) {
		if b := ix.groups[serviceaccount.MakeNamespaceGroupName(ns)]; b != nil {
			list = b.collect(r, list)
		}
	}
	return list
}

// serviceAccountNamespace returns NS for a user named
// system:serviceaccount:NS:NAME, without allocating.
func serviceAccountNamespace(user string) (string, bool) {
	rest, ok := strings.CutPrefix(user, serviceaccount.ServiceAccountUsernamePrefix)
	if !ok {
		return "", false
	}
	ns, name, ok := strings.Cut(rest, serviceaccount.ServiceAccountUsernameSeparator)
	if !ok || ns == "" || name == "" || strings.Contains(name, serviceaccount.ServiceAccountUsernameSeparator) {
		return "", false
	}
	return ns, true
}

// hasServiceAccountGroup reports whether groups holds
// system:serviceaccounts:NS, without allocating.
func hasServiceAccountGroup(groups []string, ns string) bool {
	for _, g := range groups {
		if rest, ok := strings.CutPrefix(g, serviceaccount.ServiceAccountGroupPrefix); ok && rest == ns {
			return true
		}
	}
	return false
}

// buildIndex files every policy of members, a map from subject key to the
// policies naming it by name.
func buildIndex(members map[subjectKey]map[string]*Policy) index {
	ix := index{users: map[string]*bucket{}, groups: map[string]*bucket{}}
	for k, ps := range members {
		ix.set(k, ps)
	}
	return ix
}

// set files the bucket of key k, or removes it when ps is empty. Callers
// own ix's maps (a fresh index or clones).
func (ix *index) set(k subjectKey, ps map[string]*Policy) {
	m := ix.users
	if k.kind == subjectGroup {
		m = ix.groups
	}
	if len(ps) == 0 {
		delete(m, k.name)
		return
	}
	m[k.name] = buildBucket(sortedPolicies(ps))
}

// clone returns an index whose maps may be written.
func (ix index) clone() index {
	out := index{users: maps.Clone(ix.users), groups: maps.Clone(ix.groups)}
	if out.users == nil {
		out.users = map[string]*bucket{}
	}
	if out.groups == nil {
		out.groups = map[string]*bucket{}
	}
	return out
}

// sortedPolicies returns ps ordered by name, the order reasons follow.
func sortedPolicies(ps map[string]*Policy) []*Policy {
	out := make([]*Policy, 0, len(ps))
	for _, p := range ps {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Policy) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// widenedBecause says why a Deny p covers r when no rule of p matches r
// the way RBAC matches it (the same verb, path or group, resource,
// subresource, namespace and name), for the reason the API server
// returns; "" when one does.
func (p *Policy) widenedBecause(r *request) string {
	if !r.isResource {
		for _, ru := range p.rules {
			for _, u := range ru.urls {
				if ru.verbs.has(r.verb) && (r.path == u.path || u.prefix && strings.HasPrefix(r.path, u.path)) {
					return ""
				}
			}
		}
		return fmt.Sprintf("%s %s includes the paths it denies", r.verb, r.path)
	}
	acrossNamespaces, sameResource := false, false
	for _, ru := range p.rules {
		if !ru.matchesResource(r) {
			continue
		}
		sameResource = true
		nsStrict := ru.namespaces.has(r.namespace) && (p.namespaceSelector == nil || r.namespace != "")
		if nsStrict && ru.resourceNames.has(r.name) {
			return ""
		}
		acrossNamespaces = acrossNamespaces || !nsStrict
	}
	switch {
	case !sameResource:
		res := r.resource
		if r.subresource != "" {
			res += "/" + r.subresource
		}
		return fmt.Sprintf("%s of %s in API group %q includes what it denies", r.verb, res, r.apiGroup)
	case acrossNamespaces:
		return fmt.Sprintf("%s across all namespaces includes the namespaces it denies %s in", r.verb, r.resource)
	}
	return fmt.Sprintf("%s not restricted to other names includes the %s it denies by name", r.verb, r.resource)
}

// matchesResource reports whether a resource rule names r's group,
// resource and subresource.
func (ru *rule) matchesResource(r *request) bool {
	if !r.isResource || !ru.verbs.has(r.verb) {
		return false
	}
	if !slices.Contains(ru.apiGroups, wildcard) && !slices.Contains(ru.apiGroups, r.apiGroup) {
		return false
	}
	for i := range ru.resources {
		f := &ru.resources[i]
		if (f.resource == wildcard || f.resource == r.resource) && f.matchesSubresource(r.subresource) {
			return true
		}
	}
	return false
}
