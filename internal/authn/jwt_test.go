package authn

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/user"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/authn/jwks"
)

// sameUser compares users, treating nil and empty groups and extra alike.
func sameUser(got user.Info, want *user.DefaultInfo) bool {
	if got.GetName() != want.Name || got.GetUID() != want.UID {
		return false
	}
	if len(got.GetGroups()) != 0 || len(want.Groups) != 0 {
		if !reflect.DeepEqual(got.GetGroups(), want.Groups) {
			return false
		}
	}
	if len(got.GetExtra()) != 0 || len(want.Extra) != 0 {
		if !reflect.DeepEqual(got.GetExtra(), want.Extra) {
			return false
		}
	}
	return true
}

func TestJWT(t *testing.T) {
	const corp, other = "corp-idp", "other-idp"
	bobUser := &user.DefaultInfo{Name: "corp:bob", UID: "bob", Groups: []string{"corp:dev", "corp:ops"}}
	hmacKey := []byte("0123456789abcdef0123456789abcdef")

	tests := []struct {
		name string
		// spec changes corp-idp's spec (baseSpec(testIssuer)).
		spec func(s *authnv1alpha1.JWTAuthenticatorSpec)
		// kid signs the token (default rsa-a); claims change baseClaims.
		kid    string
		claims claimSet
		// token, when set, replaces the signed token.
		token func(t *testing.T) string
		// want nil means refused.
		want *user.DefaultInfo
		// wantName is the decision's object: corp-idp unless set; "-"
		// means no object (the token reached no authenticator).
		wantName   string
		wantReason string
	}{
		// Algorithms and keys.
		{name: "RS256", kid: "rsa-a", want: bobUser},
		{name: "ES256", kid: "ec-a", want: bobUser},
		{name: "EdDSA", kid: "ed-a", want: bobUser},
		{
			name:  "no kid: every key of the token's type is tried",
			token: func(t *testing.T) string { return signRaw(t, key("ec-a").priv, jose.ES256, "", baseClaims().json(t)) },
			want:  bobUser,
		},
		{
			name: "unknown kid",
			token: func(t *testing.T) string {
				return signRaw(t, key("rsa-a").priv, jose.RS256, "rsa-z", baseClaims().json(t))
			},
			wantReason: "no key with kid",
		},
		{
			name:       "key not in the set",
			kid:        "rsa-b",
			wantReason: "no key with kid",
		},
		{
			name: "another key under a known kid",
			token: func(t *testing.T) string {
				return signRaw(t, key("rsa-b").priv, jose.RS256, "rsa-a", baseClaims().json(t))
			},
			wantReason: "signature verification failed",
		},
		{
			name: "tampered payload",
			token: func(t *testing.T) string {
				return replacePayload(t, sign(t, "rsa-a", baseClaims()), baseClaims().with(claimSet{"sub": "admin"}).json(t))
			},
			wantReason: "signature verification failed",
		},
		{
			name: "tampered payload, EdDSA",
			token: func(t *testing.T) string {
				return replacePayload(t, sign(t, "ed-a", baseClaims()), baseClaims().with(claimSet{"groups": "system:masters"}).json(t))
			},
			wantReason: "signature verification failed",
		},
		{
			name: "alg none",
			token: func(t *testing.T) string {
				return b64(`{"alg":"none","typ":"JWT","kid":"rsa-a"}`) + "." + b64(baseClaims().json(t)) + "."
			},
			wantReason: "unsupported token algorithm",
		},
		{
			name:       "HS256 with a shared secret",
			token:      func(t *testing.T) string { return signRaw(t, hmacKey, jose.HS256, "", baseClaims().json(t)) },
			wantReason: "unsupported token algorithm",
		},
		{
			name:       "HS256 naming an RSA kid",
			token:      func(t *testing.T) string { return signRaw(t, hmacKey, jose.HS256, "rsa-a", baseClaims().json(t)) },
			wantReason: "unsupported token algorithm",
		},

		// Issuer, audience and validity period.
		{
			name:       "issuer with no authenticator",
			claims:     claimSet{"iss": "https://nobody.example.com"},
			wantName:   "-",
			wantReason: "no JWTAuthenticator",
		},
		{
			name:       "issuer differs by a trailing slash",
			claims:     claimSet{"iss": testIssuer + "/"},
			wantName:   "-",
			wantReason: "no JWTAuthenticator",
		},
		{
			// Routed by iss to other-idp, whose keys did not sign it.
			name:       "issuer of another authenticator",
			claims:     claimSet{"iss": otherIssuer},
			wantName:   other,
			wantReason: "no key with kid",
		},
		{name: "audience in a list", claims: claimSet{"aud": []string{"vault", testAudience}}, want: bobUser},
		{
			name: "one of several configured audiences",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.Issuer.Audiences = []string{testAudience, "kubernetes-staging"}
			},
			claims: claimSet{"aud": "kubernetes-staging"},
			want:   bobUser,
		},
		{name: "wrong audience", claims: claimSet{"aud": "vault"}, wantReason: "audience"},
		{name: "wrong audiences in a list", claims: claimSet{"aud": []string{"vault", "Kubernetes"}}, wantReason: "audience"},
		{name: "empty audience list", claims: claimSet{"aud": []string{}}, wantReason: "audience"},
		{name: "no audience", claims: claimSet{"aud": nil}, wantReason: "aud claim"},
		{name: "audience not a string", claims: claimSet{"aud": 7}, wantReason: "aud claim"},
		// As go-oidc: no leeway for exp, which is read in whole seconds.
		{name: "expired long ago", claims: claimSet{"exp": testNow.Add(-24 * time.Hour).Unix()}, wantReason: "token expired"},
		{name: "expired a second ago", claims: claimSet{"exp": testNow.Add(-time.Second).Unix()}, wantReason: "token expired"},
		{name: "expired less than a skew ago", claims: claimSet{"exp": testNow.Add(-30 * time.Second).Unix()}, wantReason: "token expired"},
		{name: "expires this second", claims: claimSet{"exp": testNow.Unix()}, want: bobUser},
		{name: "fractional exp", claims: claimSet{"exp": float64(testNow.Add(time.Hour).Unix()) + 0.25}, want: bobUser},
		{name: "fractional exp is whole seconds", claims: claimSet{"exp": float64(testNow.Add(-time.Second).Unix()) + 0.99}, wantReason: "token expired"},
		{name: "exp in the year 3000", claims: claimSet{"exp": time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()}, want: bobUser},
		{name: "no exp", claims: claimSet{"exp": nil}, wantReason: "exp claim"},
		{name: "exp not a number", claims: claimSet{"exp": "tomorrow"}, wantReason: "exp claim"},
		{name: "nbf beyond the skew", claims: claimSet{"nbf": testNow.Add(ClockSkew + time.Second).Unix()}, wantReason: "not valid before"},
		{name: "nbf within the skew", claims: claimSet{"nbf": testNow.Add(30 * time.Second).Unix()}, want: bobUser},
		{name: "nbf in the past", claims: claimSet{"nbf": testNow.Add(-time.Hour).Unix()}, want: bobUser},
		{name: "nbf not a number", claims: claimSet{"nbf": "now"}, wantReason: "nbf claim"},

		// Claim mappings.
		{name: "groups as a string", claims: claimSet{"groups": "admins"}, want: &user.DefaultInfo{Name: "corp:bob", UID: "bob", Groups: []string{"corp:admins"}}},
		{name: "no groups claim", claims: claimSet{"groups": nil}, want: &user.DefaultInfo{Name: "corp:bob", UID: "bob"}},
		{name: "groups not strings", claims: claimSet{"groups": []int{1, 2}}, wantReason: "groups claim"},
		{
			name: "no prefixes",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username.Prefix = ptr("")
				s.ClaimMappings.Groups.Prefix = ptr("")
			},
			want: &user.DefaultInfo{Name: "bob", UID: "bob", Groups: []string{"dev", "ops"}},
		},
		{name: "no username claim", claims: claimSet{"sub": nil}, wantReason: `username claim "sub"`},
		{name: "username claim not a string", claims: claimSet{"sub": 42}, wantReason: `username claim "sub"`},
		{
			name:       "uid claim missing",
			spec:       func(s *authnv1alpha1.JWTAuthenticatorSpec) { s.ClaimMappings.UID.Claim = "oid" },
			wantReason: `uid claim "oid"`,
		},
		{
			name: "username, uid and groups by CEL",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "'idp:' + claims.sub"}
				s.ClaimMappings.UID = authnv1alpha1.ClaimOrExpression{Expression: "'uid-' + claims.sub"}
				s.ClaimMappings.Groups = authnv1alpha1.PrefixedClaimOrExpression{Expression: "dyn(claims.roles).map(r, 'role:' + r)"}
			},
			claims: claimSet{"roles": []string{"reader", "writer"}},
			want:   &user.DefaultInfo{Name: "idp:bob", UID: "uid-bob", Groups: []string{"role:reader", "role:writer"}},
		},
		{
			name: "username by CEL from email, verified",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.email"}
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Expression: "claims.email_verified == true", Message: "email not verified"}}
			},
			claims: claimSet{"email": "bob@example.com", "email_verified": true},
			want:   &user.DefaultInfo{Name: "bob@example.com", UID: "bob", Groups: []string{"corp:dev", "corp:ops"}},
		},
		{
			name: "username by CEL from email, not verified",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.email"}
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Expression: "claims.email_verified == true", Message: "email not verified"}}
			},
			claims:     claimSet{"email": "bob@example.com", "email_verified": false},
			wantReason: "email not verified",
		},
		{
			name: "username by CEL over a missing claim",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.nickname"}
			},
			wantReason: "username expression",
		},
		{
			name: "username by CEL not a string",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.level"}
			},
			claims:     claimSet{"level": 3},
			wantReason: "must return a string",
		},
		{
			name: "username by CEL empty",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.nickname"}
			},
			claims:     claimSet{"nickname": ""},
			wantReason: "empty string",
		},
		{
			name: "email claim, verified",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Claim: "email", Prefix: ptr("")}
			},
			claims: claimSet{"email": "bob@example.com", "email_verified": true},
			want:   &user.DefaultInfo{Name: "bob@example.com", UID: "bob", Groups: []string{"corp:dev", "corp:ops"}},
		},
		{
			// As the API server: an absent email_verified is not checked.
			name: "email claim, no email_verified",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Claim: "email", Prefix: ptr("")}
			},
			claims: claimSet{"email": "bob@example.com"},
			want:   &user.DefaultInfo{Name: "bob@example.com", UID: "bob", Groups: []string{"corp:dev", "corp:ops"}},
		},
		{
			name: "email claim, email_verified false",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Claim: "email", Prefix: ptr("")}
			},
			claims:     claimSet{"email": "bob@example.com", "email_verified": false},
			wantReason: "email not verified",
		},
		{
			name: "email claim, email_verified a string",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Claim: "email", Prefix: ptr("")}
			},
			claims:     claimSet{"email": "bob@example.com", "email_verified": "true"},
			wantReason: "email not verified",
		},
		{
			name: "extra by CEL, and jti as the credential id",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Extra = []authnv1alpha1.ExtraMapping{
					{Key: "example.com/tenant", ValueExpression: "claims.tenant"},
					{Key: "example.com/roles", ValueExpression: "claims.roles"},
					{Key: "example.com/empty", ValueExpression: "''"},
				}
			},
			claims: claimSet{"tenant": "caribou", "roles": []string{"a", "b"}, "jti": "token-1"},
			want: &user.DefaultInfo{Name: "corp:bob", UID: "bob", Groups: []string{"corp:dev", "corp:ops"}, Extra: map[string][]string{
				"example.com/tenant": {"caribou"},
				"example.com/roles":  {"a", "b"},
				user.CredentialIDKey: {"JTI=token-1"},
			}},
		},
		{
			name: "extra by CEL over a missing claim",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Extra = []authnv1alpha1.ExtraMapping{{Key: "example.com/tenant", ValueExpression: "claims.tenant"}}
			},
			wantReason: "extra expression",
		},
		{
			name: "extra by CEL not strings",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Extra = []authnv1alpha1.ExtraMapping{{Key: "example.com/level", ValueExpression: "claims.level"}}
			},
			claims:     claimSet{"level": 3},
			wantReason: "string or a list of strings",
		},

		// Validation rules.
		{
			name: "required claim present",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Claim: "hd", RequiredValue: "example.com"}}
			},
			claims: claimSet{"hd": "example.com"},
			want:   bobUser,
		},
		{
			name: "required claim with another value",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Claim: "hd", RequiredValue: "example.com"}}
			},
			claims:     claimSet{"hd": "evil.example"},
			wantReason: "required claim hd",
		},
		{
			name: "required claim absent",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Claim: "hd", RequiredValue: "example.com"}}
			},
			wantReason: "required claim hd",
		},
		{
			name: "claim rule by CEL holds",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Expression: "claims.tenant == 'caribou'", Message: "wrong tenant"}}
			},
			claims: claimSet{"tenant": "caribou"},
			want:   bobUser,
		},
		{
			name: "claim rule by CEL fails",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Expression: "claims.tenant == 'caribou'", Message: "wrong tenant"}}
			},
			claims:     claimSet{"tenant": "moose"},
			wantReason: "wrong tenant",
		},
		{
			name: "claim rule by CEL errors",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Expression: "claims.tenant == 'caribou'", Message: "wrong tenant"}}
			},
			wantReason: "claim validation",
		},
		{
			name: "user rule holds",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username.Prefix = ptr("")
				s.UserValidationRules = []authnv1alpha1.UserValidationRule{{Expression: "!user.username.startsWith('system:')", Message: "reserved name"}}
			},
			want: &user.DefaultInfo{Name: "bob", UID: "bob", Groups: []string{"corp:dev", "corp:ops"}},
		},
		{
			name: "user rule fails",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username.Prefix = ptr("")
				s.UserValidationRules = []authnv1alpha1.UserValidationRule{{Expression: "!user.username.startsWith('system:')", Message: "reserved name"}}
			},
			claims:     claimSet{"sub": "system:admin"},
			wantReason: "reserved name",
		},
		{
			name: "user rule over groups fails",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.UserValidationRules = []authnv1alpha1.UserValidationRule{{Expression: "!('corp:system:masters' in user.groups)", Message: "no masters"}}
			},
			claims:     claimSet{"groups": []string{"dev", "system:masters"}},
			wantReason: "no masters",
		},

		// Not JWTs at all: no authenticator is asked.
		{
			name:       "bad base64 payload",
			token:      func(*testing.T) string { return b64(`{"alg":"RS256"}`) + ".!!!not-base64!!!." + b64("sig") },
			wantName:   "-",
			wantReason: "unknown token",
		},
		{
			name: "padded base64 payload",
			token: func(t *testing.T) string {
				return b64(`{"alg":"RS256"}`) + "." + b64(baseClaims().json(t)) + "==." + b64("sig")
			},
			wantName:   "-",
			wantReason: "unknown token",
		},
		{
			name:       "payload not JSON",
			token:      func(*testing.T) string { return b64(`{"alg":"RS256"}`) + "." + b64("hello") + "." + b64("sig") },
			wantName:   "-",
			wantReason: "unknown token",
		},
		{
			name:       "no iss",
			claims:     claimSet{"iss": nil},
			wantName:   "-",
			wantReason: "unknown token",
		},
		{
			name:       "iss not a string",
			claims:     claimSet{"iss": 42},
			wantName:   "-",
			wantReason: "unknown token",
		},
		{
			name:       "four parts",
			token:      func(t *testing.T) string { return sign(t, "rsa-a", baseClaims()) + ".x" },
			wantName:   "-",
			wantReason: "unknown token",
		},
		{
			name:       "longer than MaxJWTLength",
			claims:     claimSet{"pad": strings.Repeat("x", MaxJWTLength)},
			wantName:   "-",
			wantReason: "unknown token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := baseSpec(testIssuer)
			if tt.spec != nil {
				tt.spec(spec)
			}
			e, _ := readyEngine(func(r *Registry) {
				r.SetJWT(corp, compile(t, corp, spec, keySet(t, "rsa-a", "ec-a", "ed-a"), fixedClock(testNow)))
				r.SetJWT(other, compile(t, other, baseSpec(otherIssuer), keySet(t, "rsa-b"), fixedClock(testNow)))
				// A static token in the same snapshot changes nothing for JWTs.
				r.SetStatic("bob", staticEntry("bob", bobToken, "bob"))
			})
			var token string
			if tt.token != nil {
				token = tt.token(t)
			} else {
				kid := tt.kid
				if kid == "" {
					kid = "rsa-a"
				}
				token = sign(t, kid, baseClaims().with(tt.claims))
			}

			resp, d, ok := mustAuth(t, e, token)

			wantKind, wantName := KindJWTAuthenticator, corp
			switch tt.wantName {
			case "":
			case "-":
				wantKind, wantName = "", ""
			default:
				wantName = tt.wantName
			}
			if d.Kind != wantKind || d.Name != wantName {
				t.Errorf("decision = %q/%q, want %q/%q (reason %q)", d.Kind, d.Name, wantKind, wantName, d.Reason)
			}
			if tt.want == nil {
				if ok {
					t.Fatalf("authenticated as %#v, want refused", resp.User)
				}
				if !strings.Contains(d.Reason, tt.wantReason) {
					t.Errorf("reason = %q, want it to contain %q", d.Reason, tt.wantReason)
				}
				return
			}
			if !ok {
				t.Fatalf("refused: %s", d.Reason)
			}
			if d.Reason != "" {
				t.Errorf("reason = %q on success, want none", d.Reason)
			}
			if !sameUser(resp.User, tt.want) {
				t.Errorf("user = %#v, want %#v", resp.User, tt.want)
			}
		})
	}
}

// TestJWTIssuerRouting checks that a token goes to the authenticator its
// iss names, and that each accepts only tokens signed by its own keys.
func TestJWTIssuerRouting(t *testing.T) {
	e, _ := readyEngine(func(r *Registry) {
		r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "rsa-a"), fixedClock(testNow)))
		r.SetJWT("partner", compile(t, "partner", baseSpec(otherIssuer), keySet(t, "ec-b"), fixedClock(testNow)))
	})
	corpClaims := baseClaims()
	partnerClaims := baseClaims().with(claimSet{"iss": otherIssuer})
	tests := []struct {
		name     string
		token    string
		wantOK   bool
		wantName string
	}{
		{"corp token", sign(t, "rsa-a", corpClaims), true, "corp"},
		{"partner token", sign(t, "ec-b", partnerClaims), true, "partner"},
		{"corp key, partner iss", sign(t, "rsa-a", partnerClaims), false, "partner"},
		{"partner key, corp iss", sign(t, "ec-b", corpClaims), false, "corp"},
		{"partner key, corp kid, corp iss", signRaw(t, key("ec-b").priv, jose.ES256, "rsa-a", corpClaims.json(t)), false, "corp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, d, ok := mustAuth(t, e, tt.token)
			if ok != tt.wantOK || d.Kind != KindJWTAuthenticator || d.Name != tt.wantName {
				t.Errorf("ok=%v decision=%+v, want ok=%v by %s", ok, d, tt.wantOK, tt.wantName)
			}
		})
	}
}

// TestJWTKeyRotation replaces an authenticator with one compiled with a new
// key set, as the controller does when the JWKS changes.
func TestJWTKeyRotation(t *testing.T) {
	e, r := readyEngine(func(r *Registry) {
		r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "rsa-a"), fixedClock(testNow)))
	})
	oldToken := sign(t, "rsa-a", baseClaims())
	newToken := sign(t, "rsa-b", baseClaims())
	check := func(stage, token string, want bool) {
		t.Helper()
		if _, d, ok := mustAuth(t, e, token); ok != want {
			t.Errorf("%s: ok=%v (%q), want %v", stage, ok, d.Reason, want)
		}
	}
	check("before rotation, old key", oldToken, true)
	check("before rotation, new key", newToken, false)

	// Overlap: both keys published.
	r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "rsa-a", "rsa-b"), fixedClock(testNow)))
	check("overlap, old key", oldToken, true)
	check("overlap, new key", newToken, true)

	// Old key retired.
	r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "rsa-b"), fixedClock(testNow)))
	check("after rotation, old key", oldToken, false)
	check("after rotation, new key", newToken, true)

	// Rotation to another algorithm entirely.
	r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "ed-a"), fixedClock(testNow)))
	check("EdDSA rotation, RSA key", newToken, false)
	check("EdDSA rotation, EdDSA key", sign(t, "ed-a", baseClaims()), true)
}

func TestRegistryJWTLifecycle(t *testing.T) {
	e, r := readyEngine(nil)
	token := sign(t, "ec-a", baseClaims())

	r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "ec-a"), fixedClock(testNow)))
	if !r.Has(KindJWTAuthenticator, "corp") {
		t.Error("Has(corp) false after SetJWT")
	}
	if _, d, ok := mustAuth(t, e, token); !ok {
		t.Fatalf("refused after SetJWT: %s", d.Reason)
	}

	// A nil authenticator (failed to compile) is seen but not served.
	r.SetJWT("corp", nil)
	if !r.Has(KindJWTAuthenticator, "corp") {
		t.Error("Has(corp) false after SetJWT(corp, nil)")
	}
	if _, d, ok := mustAuth(t, e, token); ok || d.Kind != "" {
		t.Errorf("SetJWT(nil) still serves: ok=%v decision=%+v", ok, d)
	}
	if _, j := e.Snapshot().Counts(); j != 0 {
		t.Errorf("snapshot serves %d JWT authenticators, want 0", j)
	}

	r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "ec-a"), fixedClock(testNow)))
	r.DeleteJWT("corp")
	if r.Has(KindJWTAuthenticator, "corp") {
		t.Error("Has(corp) true after DeleteJWT")
	}
	if _, _, ok := mustAuth(t, e, token); ok {
		t.Error("token authenticates after DeleteJWT")
	}
}

// TestJWTDuplicateIssuer: two authenticators claim one issuer; the first by
// name serves it, and the other is never tried.
func TestJWTDuplicateIssuer(t *testing.T) {
	e, r := readyEngine(func(r *Registry) {
		r.SetJWT("b-idp", compile(t, "b-idp", baseSpec(testIssuer), keySet(t, "rsa-a"), fixedClock(testNow)))
		r.SetJWT("a-idp", compile(t, "a-idp", baseSpec(testIssuer), keySet(t, "ec-a"), fixedClock(testNow)))
	})
	ecToken, rsaToken := sign(t, "ec-a", baseClaims()), sign(t, "rsa-a", baseClaims())
	if _, d, ok := mustAuth(t, e, ecToken); !ok || d.Name != "a-idp" {
		t.Errorf("EC token: ok=%v decision=%+v, want accepted by a-idp", ok, d)
	}
	if _, d, ok := mustAuth(t, e, rsaToken); ok || d.Name != "a-idp" {
		t.Errorf("RSA token: ok=%v decision=%+v, want refused by a-idp", ok, d)
	}
	if _, j := e.Snapshot().Counts(); j != 1 {
		t.Errorf("snapshot serves %d issuers, want 1", j)
	}
	r.DeleteJWT("a-idp")
	if _, d, ok := mustAuth(t, e, rsaToken); !ok || d.Name != "b-idp" {
		t.Errorf("after deleting a-idp, RSA token: ok=%v decision=%+v, want accepted by b-idp", ok, d)
	}
}

// TestJWTAuthenticatorErrors calls a compiled authenticator directly: it
// returns its failures as errors (for the log), which the engine swallows.
func TestJWTAuthenticatorErrors(t *testing.T) {
	a := compile(t, "corp", baseSpec(testIssuer), keySet(t, "rsa-a"), fixedClock(testNow))
	if a.Name != "corp" || a.Issuer != testIssuer {
		t.Errorf("Name, Issuer = %q, %q", a.Name, a.Issuer)
	}
	ctx := context.Background()

	resp, ok, err := a.AuthenticateToken(ctx, sign(t, "rsa-a", baseClaims()))
	if err != nil || !ok || resp.User.GetName() != "corp:bob" {
		t.Fatalf("valid token: resp=%v ok=%v err=%v", resp, ok, err)
	}

	// Called directly the issuer is checked again after the signature, not
	// only by the engine's routing.
	resp, ok, err = a.AuthenticateToken(ctx, sign(t, "rsa-a", baseClaims().with(claimSet{"iss": otherIssuer})))
	if ok || resp != nil || err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Errorf("foreign iss: resp=%v ok=%v err=%v, want an issuer error", resp, ok, err)
	}

	_, ok, err = a.AuthenticateToken(ctx, sign(t, "rsa-b", baseClaims()))
	if ok || !errors.Is(err, jwks.ErrUnknownKeyID) {
		t.Errorf("unknown kid: ok=%v err=%v, want jwks.ErrUnknownKeyID", ok, err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "jwt corp: ") {
		t.Errorf("error %q does not name the authenticator", err)
	}

	_, ok, err = a.AuthenticateToken(ctx, signRaw(t, key("rsa-a").priv, jose.RS256, "rsa-a", `["not","an","object"]`))
	if ok || err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("array payload: ok=%v err=%v", ok, err)
	}
}

func TestUnverifiedIssuer(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		want   string
		wantOK bool
	}{
		{name: "signed token", token: "h." + b64(`{"iss":"https://idp.example.com","sub":"x"}`) + ".s", want: "https://idp.example.com", wantOK: true},
		{name: "empty parts around the payload", token: "." + b64(`{"iss":"x"}`) + ".", want: "x", wantOK: true},
		{name: "no iss", token: "h." + b64(`{"sub":"x"}`) + ".s"},
		{name: "empty iss", token: "h." + b64(`{"iss":""}`) + ".s"},
		{name: "iss a number", token: "h." + b64(`{"iss":1}`) + ".s"},
		{name: "payload an array", token: "h." + b64(`["iss"]`) + ".s"},
		{name: "payload not base64url", token: "h.eyJ+aXNzIjoieCJ9.s"},
		{name: "padded payload", token: "h." + b64(`{"iss":"x"}`) + "=.s"},
		{name: "two parts", token: "h." + b64(`{"iss":"x"}`)},
		{name: "four parts", token: "h." + b64(`{"iss":"x"}`) + ".s.t"},
		{name: "static token", token: "k3hD9QmXc0bq2mS5yQkR7Gx0c8iXn6m1tA4uJ1pWlZs"},
		{name: "empty", token: ""},
		{name: "too long", token: "h." + b64(`{"iss":"x","p":"`+strings.Repeat("p", MaxJWTLength)+`"}`) + ".s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := UnverifiedIssuer(tt.token)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("UnverifiedIssuer = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestValidateJWTAuthenticatorSpec(t *testing.T) {
	tests := []struct {
		name string
		spec func(s *authnv1alpha1.JWTAuthenticatorSpec)
		// disallowed are the API server's service-account issuers.
		disallowed []string
		// wantField is the Field of one of the errors; "" means valid.
		wantField string
		wantType  field.ErrorType
	}{
		{name: "valid"},
		{name: "valid beside the service-account issuer", disallowed: []string{"https://kubernetes.default.svc"}},
		{name: "the API server's service-account issuer", disallowed: []string{testIssuer}, wantField: "spec.issuer.url", wantType: field.ErrorTypeInvalid},
		{
			name: "valid with every CEL field",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.Issuer.Audiences = []string{"a", "b"}
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.email"}
				s.ClaimMappings.Groups = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.groups"}
				s.ClaimMappings.UID = authnv1alpha1.ClaimOrExpression{Expression: "claims.sub"}
				s.ClaimMappings.Extra = []authnv1alpha1.ExtraMapping{{Key: "example.com/tenant", ValueExpression: "claims.tenant"}}
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Expression: "claims.email_verified == true", Message: "m"}, {Claim: "hd", RequiredValue: "example.com"}}
				s.UserValidationRules = []authnv1alpha1.UserValidationRule{{Expression: "!user.username.startsWith('system:')", Message: "reserved"}}
			},
		},
		{
			name: "username expression does not parse",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.("}
			},
			wantField: "spec.claimMappings.username.expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "username expression names an unknown variable",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "user.username"}
			},
			wantField: "spec.claimMappings.username.expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "username from claims.email without email_verified",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.email"}
			},
			wantField: "spec.claimMappings.username.expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "username expression with a prefix",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.sub", Prefix: ptr("x:")}
			},
			wantField: "spec.claimMappings.username.prefix",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "username claim without a prefix",
			spec:      func(s *authnv1alpha1.JWTAuthenticatorSpec) { s.ClaimMappings.Username.Prefix = nil },
			wantField: "spec.claimMappings.username.prefix",
			wantType:  field.ErrorTypeRequired,
		},
		{
			name: "no username mapping",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Username = authnv1alpha1.PrefixedClaimOrExpression{}
			},
			wantField: "spec.claimMappings.username",
			wantType:  field.ErrorTypeRequired,
		},
		{
			name: "groups expression does not compile",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Groups = authnv1alpha1.PrefixedClaimOrExpression{Expression: "claims.groups +"}
			},
			wantField: "spec.claimMappings.groups.expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "uid claim and expression",
			spec:      func(s *authnv1alpha1.JWTAuthenticatorSpec) { s.ClaimMappings.UID.Expression = "claims.sub" },
			wantField: "spec.claimMappings.uid",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "uid expression does not compile",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.UID = authnv1alpha1.ClaimOrExpression{Expression: "claims[sub"}
			},
			wantField: "spec.claimMappings.uid.expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "extra expression does not compile",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Extra = []authnv1alpha1.ExtraMapping{{Key: "example.com/a", ValueExpression: "claims.a"}, {Key: "example.com/b", ValueExpression: "claims.b)"}}
			},
			wantField: "spec.claimMappings.extra[1].valueExpression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "extra key without a domain",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Extra = []authnv1alpha1.ExtraMapping{{Key: "tenant", ValueExpression: "claims.tenant"}}
			},
			wantField: "spec.claimMappings.extra[0].key",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "extra key reserved for Kubernetes",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimMappings.Extra = []authnv1alpha1.ExtraMapping{{Key: "authentication.kubernetes.io/credential-id", ValueExpression: "claims.jti"}}
			},
			wantField: "spec.claimMappings.extra[0].key",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "claim rule expression does not compile",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Claim: "hd", RequiredValue: "x"}, {Expression: "claims.tenant ==", Message: "m"}}
			},
			wantField: "spec.claimValidationRules[1].expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "claim rule expression does not return a boolean",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Expression: "'yes'"}}
			},
			wantField: "spec.claimValidationRules[0].expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "claim rule with claim and expression",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.ClaimValidationRules = []authnv1alpha1.ClaimValidationRule{{Claim: "hd", Expression: "true"}}
			},
			wantField: "spec.claimValidationRules[0]",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name: "user rule over claims",
			spec: func(s *authnv1alpha1.JWTAuthenticatorSpec) {
				s.UserValidationRules = []authnv1alpha1.UserValidationRule{{Expression: "claims.sub != 'root'"}}
			},
			wantField: "spec.userValidationRules[0].expression",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "http issuer",
			spec:      func(s *authnv1alpha1.JWTAuthenticatorSpec) { s.Issuer.URL = "http://idp.example.com" },
			wantField: "spec.issuer.url",
			wantType:  field.ErrorTypeInvalid,
		},
		{
			name:      "no issuer",
			spec:      func(s *authnv1alpha1.JWTAuthenticatorSpec) { s.Issuer.URL = "" },
			wantField: "spec.issuer.url",
			wantType:  field.ErrorTypeRequired,
		},
		{
			name:      "no audiences",
			spec:      func(s *authnv1alpha1.JWTAuthenticatorSpec) { s.Issuer.Audiences = nil },
			wantField: "spec.issuer.audiences",
			wantType:  field.ErrorTypeRequired,
		},
		{
			name:      "duplicate audiences",
			spec:      func(s *authnv1alpha1.JWTAuthenticatorSpec) { s.Issuer.Audiences = []string{"a", "a"} },
			wantField: "spec.issuer.audiences[1]",
			wantType:  field.ErrorTypeDuplicate,
		},
	}
	compiler := celCompiler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := baseSpec(testIssuer)
			if tt.spec != nil {
				tt.spec(spec)
			}
			_, errs := ValidateJWTAuthenticatorSpec(compiler, spec, tt.disallowed)
			for _, e := range errs {
				if !strings.HasPrefix(e.Field, "spec.") {
					t.Errorf("field %q is not rooted at spec.: %v", e.Field, e)
				}
			}
			a, compileErr := CompileJWT(compiler, "corp", spec, keySet(t, "rsa-a"), fixedClock(testNow), tt.disallowed)
			if tt.wantField == "" {
				if len(errs) > 0 || compileErr != nil {
					t.Fatalf("valid spec: errors %v, CompileJWT: %v", errs, compileErr)
				}
				if a == nil {
					t.Fatal("CompileJWT returned no authenticator and no error")
				}
				return
			}
			found := false
			for _, e := range errs {
				if e.Field == tt.wantField && e.Type == tt.wantType {
					found = true
				}
			}
			if !found {
				t.Errorf("errors %v, want one of type %q at %q", errs, tt.wantType, tt.wantField)
			}
			if compileErr == nil || a != nil {
				t.Fatalf("CompileJWT = %v, %v; want an error", a, compileErr)
			}
			if !strings.Contains(compileErr.Error(), tt.wantField) {
				t.Errorf("CompileJWT error %q does not name %s", compileErr, tt.wantField)
			}
		})
	}
}

func TestCompileJWTNoKeys(t *testing.T) {
	a, err := CompileJWT(celCompiler(), "corp", baseSpec(testIssuer), nil, nil, nil)
	if err == nil || a != nil {
		t.Fatalf("CompileJWT with no key set = %v, %v; want an error", a, err)
	}
	var fe *field.Error
	if !errors.As(err, &fe) || fe.Field != "spec.jwks" {
		t.Errorf("error %v, want a field error at spec.jwks", err)
	}
}

// TestCompileJWTNilClock: with no clock the authenticator uses time.Now.
func TestCompileJWTNilClock(t *testing.T) {
	a, err := CompileJWT(celCompiler(), "corp", baseSpec(testIssuer), keySet(t, "ec-a"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ctx := context.Background()
	fresh := baseClaims().with(claimSet{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if _, ok, err := a.AuthenticateToken(ctx, sign(t, "ec-a", fresh)); !ok {
		t.Errorf("token valid for the next hour refused: %v", err)
	}
	stale := baseClaims().with(claimSet{"exp": now.Add(-time.Hour).Unix()})
	if _, ok, _ := a.AuthenticateToken(ctx, sign(t, "ec-a", stale)); ok {
		t.Error("token expired an hour ago accepted")
	}
}

func TestToAPIServer(t *testing.T) {
	spec := baseSpec(testIssuer)
	if got := ToAPIServer(spec).Issuer.AudienceMatchPolicy; got != "" {
		t.Errorf("one audience: match policy %q, want empty", got)
	}
	spec.Issuer.Audiences = []string{"a", "b"}
	out := ToAPIServer(spec)
	if out.Issuer.AudienceMatchPolicy != "MatchAny" {
		t.Errorf("two audiences: match policy %q, want MatchAny", out.Issuer.AudienceMatchPolicy)
	}
	// The conversion copies the audiences: changing the result leaves the spec alone.
	out.Issuer.Audiences[0] = "changed"
	if spec.Issuer.Audiences[0] != "a" {
		t.Error("ToAPIServer shares the spec's audiences slice")
	}
}

// TestJWTMalformedDatesAndEmptyUsername: NumericDates outside [0, 9999] are
// malformed and refused (a bad nbf must not fail open), and a claim mapping
// that yields an empty username is refused like the CEL path.
func TestJWTMalformedDatesAndEmptyUsername(t *testing.T) {
	e, _ := readyEngine(func(r *Registry) {
		spec := baseSpec(testIssuer)
		spec.ClaimMappings.Username.Prefix = ptr("")
		r.SetJWT("corp", compile(t, "corp", spec, keySet(t, "rsa-a"), fixedClock(testNow)))
	})
	for name, c := range map[string]claimSet{
		"nbf 1e300":      baseClaims().with(claimSet{"nbf": 1e300}),
		"nbf 1e19":       baseClaims().with(claimSet{"nbf": 1e19}),
		"nbf -1e300":     baseClaims().with(claimSet{"nbf": -1e300}),
		"exp 1e300":      baseClaims().with(claimSet{"exp": 1e300}),
		"exp negative":   baseClaims().with(claimSet{"exp": -5}),
		"empty username": baseClaims().with(claimSet{"sub": ""}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, d, ok := mustAuth(t, e, sign(t, "rsa-a", c)); ok {
				t.Fatalf("authenticated: %+v", d)
			}
		})
	}
	if _, d, ok := mustAuth(t, e, sign(t, "rsa-a", baseClaims())); !ok {
		t.Fatalf("control token refused: %+v", d)
	}
}
