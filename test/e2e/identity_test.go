package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/approval"
)

// grantRBAC gives a user a ClusterRole of rules, removed at cleanup.
func grantRBAC(t *testing.T, ctx context.Context, name, username string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: username}}}
	if err := env.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, role) })
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, binding) })
}

// No identity escalation: a user allowed to create StaticTokens but not
// to impersonate cannot mint system:masters or another user, and can mint
// a user it may impersonate; creating a JWTAuthenticator needs impersonating
// anyone.
func TestStaticTokensCannotEscalateIdentity(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	_, token := user(t, ctx, "minter")
	kc := tokenKubeconfig(t, token)
	grantRBAC(t, ctx, "e2e-minter", "minter",
		rbacv1.PolicyRule{APIGroups: []string{authnv1alpha1.GroupVersion.Group}, Resources: []string{"statictokens", "jwtauthenticators"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}, // not escalate
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"helper"}},
		// The Secrets of its own StaticTokens, which it reads the tokens from.
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"},
			ResourceNames: []string{"e2e-mint-masters-token", "e2e-mint-victim-token", "e2e-mint-extra-token", "e2e-mint-helper-token", "e2e-mint-forged-token"}},
	)
	mint := func(name, userSpec string) error {
		_, _, err := kubectlApplyStdin(t, ctx, kc, `apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: `+name+`}
spec:
  user: `+userSpec+`
  secretRef: {name: `+name+`-token}
`)
		t.Cleanup(func() { deleteObj(t, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: name}}) })
		return err
	}

	// RBAC alone would let minter create these; impersonation is missing.
	var err error
	eventually(t, ctx, "minting system:masters is refused for the missing impersonation", func(ctx context.Context) (bool, error) {
		err = mint("e2e-mint-masters", `{username: helper, groups: ["system:masters"]}`)
		return err != nil && strings.Contains(err.Error(), `impersonate groups "system:masters"`), err
	})
	if !strings.Contains(err.Error(), "escalation refused") {
		t.Errorf("refusal does not say why: %v", err)
	}
	if err := mint("e2e-mint-victim", `{username: victim}`); err == nil || !strings.Contains(err.Error(), `impersonate users "victim"`) {
		t.Errorf("minting another user: %v, want refused for impersonate users \"victim\"", err)
	}
	if err := mint("e2e-mint-extra", `{username: helper, uid: "7", extra: {team: [caribou]}}`); err == nil ||
		!strings.Contains(err.Error(), `impersonate uids "7"`) || !strings.Contains(err.Error(), `impersonate userextras/team "caribou"`) {
		t.Errorf("minting a uid and extra: %v, want both impersonations named", err)
	}
	if err := mint("e2e-mint-helper", `{username: helper}`); err != nil {
		t.Errorf("minting a user minter may impersonate: %v", err)
	}
	// The approval names who was checked, whatever the author wrote there.
	_, _, err = kubectlApplyStdin(t, ctx, kc, `apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata:
  name: e2e-mint-forged
  annotations:
    portcullis.io/author: '{"username":"kubernetes-admin","groups":["system:masters"]}'
    portcullis.io/approval: v1:AAAA
spec: {user: {username: helper}, secretRef: {name: e2e-mint-forged-token}}
`)
	t.Cleanup(func() {
		deleteObj(t, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-mint-forged"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	author := func(name string) string {
		var st authnv1alpha1.StaticToken
		if err := env.Client.Get(ctx, clientKey(name), &st); err != nil {
			t.Fatal(err)
		}
		return st.Annotations[approval.AuthorAnnotation]
	}
	for _, name := range []string{"e2e-mint-helper", "e2e-mint-forged"} {
		if a := author(name); !strings.Contains(a, `"username":"minter"`) || strings.Contains(a, "system:masters") {
			t.Errorf("StaticToken %s: author %s, want minter", name, a)
		}
		waitCondition(t, ctx, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.ConditionTrue, authnv1alpha1.ReasonLoaded)
	}
	// An update is checked again when what it grants changes, and keeps
	// its approval when only metadata does.
	if _, err := kubectl(t, ctx, kc, "patch", "statictoken", "e2e-mint-helper", "--type=merge", "-p", `{"spec":{"user":{"groups":["system:masters"]}}}`); err == nil || !strings.Contains(err.Error(), `impersonate groups "system:masters"`) {
		t.Errorf("adding system:masters by update: %v, want refused", err)
	}
	// Every change of the spec is checked again, not only of the identity:
	// minter may update StaticTokens but may not point the admin's token
	// for system:masters at a Secret of its own, while a label is fine.
	apply(t, ctx, `apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-admin-made}
spec: {user: {username: e2e-root, groups: ["system:masters"]}, secretRef: {name: e2e-admin-made-token}}
`)
	t.Cleanup(func() {
		deleteObj(t, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-admin-made"}})
	})
	if _, err := kubectl(t, ctx, kc, "patch", "statictoken", "e2e-admin-made", "--type=merge", "-p", `{"spec":{"secretRef":{"name":"e2e-minter-own"}}}`); err == nil || !strings.Contains(err.Error(), `impersonate groups "system:masters"`) {
		t.Errorf("pointing the admin's token at another Secret: %v, want refused", err)
	}
	// Nor name the admin's Secret in a StaticToken of its own: the token
	// would then be served as minter's, or as no one's (disabled), when
	// minter's StaticToken is the older.
	_, _, err = kubectlApplyStdin(t, ctx, kc, `apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-mint-hijack}
spec: {user: {username: helper}, secretRef: {name: e2e-admin-made-token}, disabled: true}
`)
	t.Cleanup(func() {
		deleteObj(t, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-mint-hijack"}})
	})
	if err == nil || !strings.Contains(err.Error(), "get secrets e2e-admin-made-token in namespace "+env.Namespace) {
		t.Errorf("claiming the admin's Secret: %v, want refused for get secrets", err)
	}
	if _, err := kubectl(t, ctx, kc, "label", "statictoken", "e2e-admin-made", "e2e=minter-label"); err != nil {
		t.Errorf("a label by minter: %v", err)
	}
	if a := author("e2e-admin-made"); strings.Contains(a, "minter") {
		t.Errorf("a label by minter made it the author: %s", a)
	}
	before := author("e2e-mint-helper")
	if _, _, err := env.ControlPlane.Kubectl(ctx, "", "label", "statictoken", "e2e-mint-helper", "e2e=relabelled"); err != nil {
		t.Fatal(err)
	}
	if a := author("e2e-mint-helper"); a != before {
		t.Errorf("a label by the admin changed the author from %s to %s", before, a)
	}
	_, _, err = kubectlApplyStdin(t, ctx, kc, `apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-mint-idp}
spec:
  issuer: {url: "https://mint.example.com", audiences: [kubernetes]}
  jwks: {inline: '{"keys":[]}'}
  claimMappings: {username: {claim: sub, prefix: "mint:"}}
`)
	t.Cleanup(func() {
		deleteObj(t, &authnv1alpha1.JWTAuthenticator{ObjectMeta: metav1.ObjectMeta{Name: "e2e-mint-idp"}})
	})
	if err == nil || !strings.Contains(err.Error(), `impersonate users "any"`) || !strings.Contains(err.Error(), `impersonate groups "any"`) {
		t.Errorf("a JWTAuthenticator by minter: %v, want refused for impersonating any user and group", err)
	}
}

// A JWTAuthenticator may not name the API server's own service-account
// issuer, as the API server refuses one of its own: it verifies those
// tokens itself, and the webhook, tried after it, would accept a token it
// refused (a deleted service account's). The issuer is the one the API
// server's discovery document names.
func TestJWTAuthenticatorMayNotNameTheServiceAccountIssuer(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	body, _, err := env.ControlPlane.Kubectl(ctx, "", "get", "--raw", "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Issuer == "" {
		t.Fatalf("discovery document %s: %v", body, err)
	}
	t.Cleanup(func() {
		deleteObj(t, &authnv1alpha1.JWTAuthenticator{ObjectMeta: metav1.ObjectMeta{Name: "e2e-sa-issuer"}})
	})
	_, stderr, err := kubectlApplyStdin(t, ctx, "", fmt.Sprintf(`apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-sa-issuer}
spec:
  issuer: {url: %q, audiences: [kubernetes]}
  jwks: {inline: '{"keys":[]}'}
  claimMappings: {username: {claim: sub, prefix: "sa:"}}
`, doc.Issuer))
	if err == nil || !strings.Contains(stderr, "spec.issuer.url") || !strings.Contains(stderr, doc.Issuer) {
		t.Errorf("a JWTAuthenticator for the service-account issuer %s: %v %s, want refused naming spec.issuer.url", doc.Issuer, err, stderr)
	}
}
