package authz

import (
	"sort"

	authorizationv1 "k8s.io/api/authorization/v1"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// Grant is one thing an Allow policy gives, as the attributes of the
// SubjectAccessReview that asks whether its author holds it: exactly one of
// Resource and NonResource is set.
type Grant struct {
	Resource    *authorizationv1.ResourceAttributes
	NonResource *authorizationv1.NonResourceAttributes
}

// Grants lists every (verb, group, resource, name, namespace) and (verb,
// URL) the policy's rules give, read from the compiled rules the engine
// matches with, so that escalation prevention and decisions cannot drift
// apart. Wildcards are asked as wildcards: RBAC answers "*" only for a
// wildcard grant, so an author must hold at least what they give away. A
// namespaceSelector or conditions only narrow a grant: the grants are the
// unnarrowed ones, which is stricter.
func (p *Policy) Grants() []Grant {
	var out []Grant
	seen := map[authorizationv1.ResourceAttributes]bool{}
	for _, ru := range p.rules {
		verbs := ru.verbs.values(wildcard)
		for _, u := range ru.urls {
			path := u.path
			if u.prefix {
				path += wildcard
			}
			for _, v := range verbs {
				out = append(out, Grant{NonResource: &authorizationv1.NonResourceAttributes{Path: path, Verb: v}})
			}
		}
		if len(ru.resources) == 0 {
			continue
		}
		// Every namespace and cluster scope is namespace "" in a review.
		namespaces := ru.namespaces.values("")
		names := ru.resourceNames.values("")
		for _, ns := range namespaces {
			for _, g := range ru.apiGroups {
				for _, f := range ru.resources {
					resource, sub := f.review()
					for _, name := range names {
						for _, v := range verbs {
							a := authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Group: g, Resource: resource, Subresource: sub, Name: name}
							if !seen[a] {
								seen[a] = true
								out = append(out, Grant{Resource: &a})
							}
						}
					}
				}
			}
		}
	}
	return out
}

// EscalationGrants is what the author of the policy must hold: Grants for
// an enforced Allow, nothing for a Deny or a DryRun policy, which give no
// one anything. The admission check asks for it and the controller
// verifies the approval of it.
func (p *Policy) EscalationGrants() []Grant {
	if p.Effect != authzv1alpha1.EffectAllow || p.DryRun {
		return nil
	}
	return p.Grants()
}

// values lists a compiled set in order; any is the one value given.
func (s *stringSet) values(any string) []string {
	if s.any {
		return []string{any}
	}
	if s.set == nil {
		if len(s.list) == 0 {
			return []string{any}
		}
		return s.list
	}
	out := make([]string, 0, len(s.set))
	for v := range s.set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// review is the resource and subresource a review asks for the form:
// "pods" and "*" as they are, "pods/log" by its subresource's name; and
// for "pods/*" and "*/*", which serve every subresource, "*": in RBAC only
// a rule on every resource grants every subresource, while its rules
// "pods/*" and "*/*" are taken literally and grant none, so asking for
// subresource "*" would let such a rule give away pods/exec.
func (f *resourceForm) review() (resource, subresource string) {
	switch f.match {
	case subAny:
		return wildcard, ""
	case subExact:
		return f.resource, f.subresource
	}
	return f.resource, ""
}
