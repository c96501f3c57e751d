package authn

import (
	"context"
	"slices"
	"testing"

	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// TestAudiences: a token authenticates only for the audiences it is valid
// for (DESIGN.md, "Tokens are bound to their audience"). A static token
// names none, so the API server accepts it for its own implicit audiences
// only; a JWT names the review's audiences that are both its aud and the
// authenticator's.
func TestAudiences(t *testing.T) {
	spec := baseSpec(testIssuer)
	spec.Issuer.Audiences = []string{testAudience, "vault"}
	e, _ := readyEngine(func(r *Registry) {
		r.SetJWT("corp", compile(t, "corp", spec, keySet(t, "rsa-a"), fixedClock(testNow)))
		r.SetStatic("bob", staticEntry("bob", bobToken, "bob"))
	})
	both := sign(t, "rsa-a", baseClaims().with(claimSet{"aud": []string{testAudience, "vault"}}))
	kubeOnly := sign(t, "rsa-a", baseClaims().with(claimSet{"aud": testAudience}))
	withGrafana := sign(t, "rsa-a", baseClaims().with(claimSet{"aud": []string{testAudience, "grafana"}}))

	tests := []struct {
		name   string
		token  string
		review []string // nil: the review names no audiences
		want   []string
	}{
		{"static, no audiences asked", bobToken, nil, nil},
		{"static, the API server's audience asked", bobToken, []string{"https://kubernetes.default.svc"}, nil},
		{"static, another service's audience asked", bobToken, []string{"vault"}, nil},
		{"JWT, no audiences asked: what it is valid for", both, nil, []string{testAudience, "vault"}},
		{"JWT, one of its audiences asked", both, []string{"vault"}, []string{"vault"}},
		{"JWT, its audience among others asked", both, []string{"grafana", testAudience}, []string{testAudience}},
		{"JWT, the API server's implicit audience asked", kubeOnly, []string{"https://kubernetes.default.svc"}, nil},
		{"JWT, an audience it lacks asked", kubeOnly, []string{"vault"}, nil},
		{"JWT, an audience only the token has asked", withGrafana, []string{"grafana"}, nil},
		{"JWT, no audiences asked, aud beyond the authenticator's", withGrafana, nil, []string{testAudience}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.review != nil {
				ctx = authenticator.WithAudiences(ctx, tc.review)
			}
			resp, d, ok := e.Authenticate(ctx, tc.token)
			if !ok {
				t.Fatalf("not authenticated: %+v", d)
			}
			if !slices.Equal([]string(resp.Audiences), tc.want) {
				t.Errorf("audiences %q, want %q", resp.Audiences, tc.want)
			}
		})
	}
}
