package authn

import (
	"sort"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/authz"
)

// Impersonations are the checks the API server's impersonation filter
// makes for acting as u: the user (or service account), each group, the
// uid and each value of each extra, in that order. A StaticToken grants
// exactly what impersonating u would, so its author needs the same
// rights (and more: StaticTokenGrants).
func Impersonations(u authnv1alpha1.UserInfo) []authz.Grant {
	imp := func(group, resource, sub, ns, name string) authz.Grant {
		return authz.Grant{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Group: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}}
	}
	var out []authz.Grant
	if ns, name, err := serviceaccount.SplitUsername(u.Username); err == nil {
		out = append(out, imp("", "serviceaccounts", "", ns, name))
	} else {
		out = append(out, imp("", "users", "", "", u.Username))
	}
	for _, g := range u.Groups {
		out = append(out, imp("", "groups", "", "", g))
	}
	if u.UID != "" {
		out = append(out, imp(authenticationv1.SchemeGroupVersion.Group, "uids", "", "", u.UID))
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, val := range u.Extra[k] {
			out = append(out, imp(authenticationv1.SchemeGroupVersion.Group, "userextras", k, "", val))
		}
	}
	return out
}

// StaticTokenGrants is what a StaticToken grants: its identity, as
// impersonating it would (Impersonations), and the token in its Secret,
// in the operator's namespace secretNamespace. Naming a Secret claims its
// token, and the oldest StaticToken holding a token is the one served: an
// author who could name another's Secret would take that token over, to
// their own identity or to none. So the author must be able to read the
// Secret, as anyone who can already use the token can.
func StaticTokenGrants(spec authnv1alpha1.StaticTokenSpec, secretNamespace string) []authz.Grant {
	return append(Impersonations(spec.User), authz.Grant{Resource: &authorizationv1.ResourceAttributes{
		Verb: "get", Resource: "secrets", Namespace: secretNamespace, Name: spec.SecretRef.Name}})
}

// JWTAuthenticatorGrants is what a JWTAuthenticator grants: its claim
// mappings can produce any identity, so its author must be able to
// impersonate any user, service account (a username
// system:serviceaccount:NS:NAME is one, and the impersonation filter asks
// for it as one), group, uid and extra, as for a StaticToken of each.
// Each is asked with no name and no namespace: every one of them.
func JWTAuthenticatorGrants() []authz.Grant {
	auth := authenticationv1.SchemeGroupVersion.Group
	return []authz.Grant{
		{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}},
		{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "serviceaccounts"}},
		{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "groups"}},
		{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Group: auth, Resource: "uids"}},
		{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Group: auth, Resource: "userextras", Subresource: "*"}},
	}
}
