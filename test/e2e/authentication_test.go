package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
)

func TestStaticTokenAuthenticatesThroughTheAPIServer(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	apply(t, ctx, `
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-carol}
spec:
  user: {username: carol, uid: "2002", groups: [developers, caribou], extra: {team: [caribou]}}
  secretRef: {name: e2e-carol-token}
`)
	st := &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-carol"}}
	t.Cleanup(func() { deleteObj(t, st) })

	token, err := env.StaticToken(ctx, "e2e-carol", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 43 {
		t.Fatalf("generated token has %d characters, want 43 (256 bits, base64url)", len(token))
	}

	// client-go as the token's user: the API server asks /authenticate.
	u, err := whoami(ctx, t, token)
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if u.Username != "carol" || u.UID != "2002" || !contains(u.Groups, "developers") || !contains(u.Groups, "caribou") ||
		!contains(u.Groups, "system:authenticated") || strings.Join(u.Extra["team"], ",") != "caribou" {
		t.Fatalf("whoami = %+v", u)
	}

	// kubectl as the same user.
	out, err := kubectl(t, ctx, tokenKubeconfig(t, token), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if err != nil || out != "carol" {
		t.Fatalf("kubectl auth whoami: %q %v", out, err)
	}

	// Printer columns make kubectl get useful.
	out, err = kubectl(t, ctx, "", "get", "statictokens", "e2e-carol")
	if err != nil {
		t.Fatal(err)
	}
	header := lines(out)[0]
	for _, col := range []string{"USERNAME", "SECRET", "EXPIRES", "DISABLED", "READY"} {
		if !strings.Contains(header, col) {
			t.Errorf("kubectl get statictokens header %q lacks %s", header, col)
		}
	}
	if !strings.Contains(out, "carol") || !strings.Contains(out, "True") {
		t.Errorf("kubectl get statictokens:\n%s", out)
	}

	// An unknown token is 401 from the API server.
	expectUnauthorized(t, ctx, "an unknown token", "this-token-is-not-known-anywhere")

	// A changed Secret takes effect within seconds: the old token stops
	// working, the new one works.
	var s corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: env.Namespace, Name: "e2e-carol-token"}, &s); err != nil {
		t.Fatal(err)
	}
	newToken := "rotated-" + token
	s.Data["token"] = []byte(newToken + "\n") // a trailing newline, as `kubectl create secret --from-file` leaves, is trimmed
	if err := env.Client.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the rotated token authenticates", func(ctx context.Context) (bool, error) {
		u, err := whoami(ctx, t, newToken)
		return err == nil && u.Username == "carol", err
	})
	expectUnauthorized(t, ctx, "the replaced token", token)

	// Disabled: 401, and status says why.
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"disabled":true}}`))
	if err := env.Client.Patch(ctx, st, patch); err != nil {
		t.Fatal(err)
	}
	expectUnauthorized(t, ctx, "a disabled token", newToken)
	waitCondition(t, ctx, st, metav1.ConditionFalse, authnv1alpha1.ReasonDisabled)
}

func TestExpiredStaticTokenIsRefused(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	const token = "e2e-dave-token-0123456789abcdef"
	apply(t, ctx, `
apiVersion: v1
kind: Secret
metadata: {name: e2e-dave-token}
stringData: {token: `+token+`}
---
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-dave}
spec:
  user: {username: dave}
  secretRef: {name: e2e-dave-token}
  expiresAt: "2020-01-01T00:00:00Z"
`)
	st := &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-dave"}}
	t.Cleanup(func() {
		deleteObj(t, st)
		deleteObj(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: env.Namespace, Name: "e2e-dave-token"}})
	})
	waitCondition(t, ctx, st, metav1.ConditionFalse, authnv1alpha1.ReasonExpired)
	expectUnauthorized(t, ctx, "an expired token", token)

	// Moving expiresAt into the future brings it back.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if err := env.Client.Patch(ctx, st, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"expiresAt":"`+future+`"}}`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the token authenticates once not expired", func(ctx context.Context) (bool, error) {
		u, err := whoami(ctx, t, token)
		return err == nil && u.Username == "dave", err
	})
}

func TestInvalidSpecsAreRefusedAtApply(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	cases := []struct {
		name, manifest, want string
	}{
		{"StaticToken without username", `
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-bad}
spec: {user: {uid: "1"}, secretRef: {name: x}}`, "spec.user.username: Required value"},
		{"StaticToken unknown field", `
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-bad}
spec: {user: {username: x}, secretRef: {name: x}, colour: blue}`, `.spec.colour: field not declared in schema`},
		{"StaticToken extra key without values", `
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-bad}
spec: {user: {username: x, extra: {example.com/breakglass: []}}, secretRef: {name: x}}`, "spec.user.extra.example.com/breakglass: Invalid value: 0: spec.user.extra.example.com/breakglass in body should have at least 1 items"},
		{"JWTAuthenticator with two key sources", `
apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-bad}
spec:
  issuer: {url: "https://idp.example.com", audiences: [kubernetes]}
  jwks: {inline: "{}", url: "https://idp.example.com/jwks"}
  claimMappings: {username: {claim: sub, prefix: ""}}`, "spec.jwks: Invalid value: exactly one of inline, secretRef or url must be set"},
		{"JWTAuthenticator http issuer", `
apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-bad}
spec:
  issuer: {url: "http://idp.example.com", audiences: [kubernetes]}
  jwks: {inline: "{}"}
  claimMappings: {username: {claim: sub, prefix: ""}}`, "spec.issuer.url: Invalid value: \"http://idp.example.com\": must be an https URL"},
		{"JWTAuthenticator claim and expression", `
apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-bad}
spec:
  issuer: {url: "https://idp.example.com", audiences: [kubernetes]}
  jwks: {inline: "{}"}
  claimMappings: {username: {claim: sub, expression: "claims.sub"}}`, "spec.claimMappings.username: Invalid value: exactly one of claim or expression must be set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Apply(ctx, []byte(tc.manifest))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// issuer is an OIDC-style issuer the test runs: it signs tokens and serves
// its JWKS over TLS.
type issuer struct {
	srv     *httptest.Server
	key     atomic.Pointer[jose.JSONWebKey]
	fetches atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{}
	is.rotate(t)
	is.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		is.fetches.Add(1)
		pub := is.key.Load().Public()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) rotate(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid := fmt.Sprintf("key-%d", time.Now().UnixNano())
	is.key.Store(&jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"})
}

func (is *issuer) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw}))
}

func (is *issuer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	k := is.key.Load()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const e2eIssuerURL = "https://issuer.e2e.portcullis.test"

func TestJWTAuthenticatesThroughTheAPIServer(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	is := newIssuer(t)
	ca, _ := json.Marshal(is.caPEM())
	apply(t, ctx, `
apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-corp}
spec:
  issuer: {url: "`+e2eIssuerURL+`", audiences: [kubernetes]}
  jwks:
    url: "`+is.srv.URL+`/jwks"
    certificateAuthority: `+string(ca)+`
  claimMappings:
    username: {claim: sub, prefix: "corp:"}
    groups: {claim: groups, prefix: "corp:"}
    uid: {claim: sub}
    extra:
    - {key: example.com/tenant, valueExpression: "claims.tenant"}
  claimValidationRules:
  - {expression: "claims.email_verified == true", message: "email not verified"}
  userValidationRules:
  - {expression: "!user.username.startsWith('corp:system')", message: "reserved name"}
`)
	ja := &authnv1alpha1.JWTAuthenticator{ObjectMeta: metav1.ObjectMeta{Name: "e2e-corp"}}
	t.Cleanup(func() { deleteObj(t, ja) })
	waitCondition(t, ctx, ja, metav1.ConditionTrue, authnv1alpha1.ReasonLoaded)

	now := time.Now()
	claims := func(mut func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": e2eIssuerURL, "aud": "kubernetes", "sub": "alice",
			"groups": []string{"admins", "caribou"}, "tenant": "acme", "email_verified": true,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
		if mut != nil {
			mut(c)
		}
		return c
	}
	good := is.sign(t, claims(nil))
	u, err := whoami(ctx, t, good)
	if err != nil {
		t.Fatalf("whoami with a valid JWT: %v", err)
	}
	if u.Username != "corp:alice" || u.UID != "alice" || !contains(u.Groups, "corp:admins") || !contains(u.Groups, "corp:caribou") ||
		strings.Join(u.Extra["example.com/tenant"], ",") != "acme" {
		t.Fatalf("whoami = %+v", u)
	}
	out, err := kubectl(t, ctx, tokenKubeconfig(t, good), "auth", "whoami", "-o", "json")
	if err != nil || !strings.Contains(out, `"corp:alice"`) || !strings.Contains(out, `"example.com/tenant"`) {
		t.Fatalf("kubectl auth whoami: %s %v", out, err)
	}

	// Audiences, asked through the API server's TokenReview API as a
	// service checking a token would: the JWT is good for its own
	// audience and the API server's, not for another service's.
	for _, tc := range []struct {
		audiences []string
		want      bool
		wantAuds  []string
	}{
		{nil, true, nil},
		{[]string{"kubernetes"}, true, []string{"kubernetes"}},
		{[]string{"vault"}, false, nil},
	} {
		st := reviewToken(ctx, t, good, tc.audiences)
		if st.Authenticated != tc.want || (tc.wantAuds != nil && strings.Join(st.Audiences, ",") != strings.Join(tc.wantAuds, ",")) {
			t.Errorf("TokenReview of the JWT for audiences %q: %+v, want authenticated=%v audiences %q", tc.audiences, st, tc.want, tc.wantAuds)
		}
	}

	refused := map[string]string{
		"expired":          is.sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Minute).Unix() })),
		"wrong audience":   is.sign(t, claims(func(c map[string]any) { c["aud"] = "someone-else" })),
		"unverified email": is.sign(t, claims(func(c map[string]any) { c["email_verified"] = false })),
		"reserved name":    is.sign(t, claims(func(c map[string]any) { c["sub"] = "system:admin" })),
		"unknown issuer":   is.sign(t, claims(func(c map[string]any) { c["iss"] = "https://other.example.com" })),
		"bad signature":    good[:len(good)-4] + "AAAA",
	}
	for name, tok := range refused {
		t.Run(name, func(t *testing.T) { expectUnauthorized(t, ctx, name, tok) })
	}

	// Key rotation: the issuer switches keys; a token with the new kid makes
	// the operator refetch the JWKS and authenticates.
	before := is.fetches.Load()
	is.rotate(t)
	rotated := is.sign(t, claims(func(c map[string]any) { c["sub"] = "alice2" }))
	eventually(t, ctx, "a token signed with the rotated key authenticates", func(ctx context.Context) (bool, error) {
		u, err := whoami(ctx, t, rotated)
		return err == nil && u.Username == "corp:alice2", err
	})
	if is.fetches.Load() <= before {
		t.Fatal("the JWKS was not refetched for an unknown kid")
	}
}

// Invalid CEL in a JWTAuthenticator is refused at apply by the operator's
// validating webhook for its own kinds, with the field named.
func TestInvalidCELIsRefusedAtApply(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	err := env.Apply(ctx, []byte(`
apiVersion: authentication.portcullis.io/v1alpha1
kind: JWTAuthenticator
metadata: {name: e2e-badcel}
spec:
  issuer: {url: "https://badcel.example.com", audiences: [kubernetes]}
  jwks: {inline: '{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"k1","use":"sig","alg":"ES256"}]}'}
  claimMappings: {username: {expression: "claims.sub +"}}
`))
	if err == nil {
		deleteObj(t, &authnv1alpha1.JWTAuthenticator{ObjectMeta: metav1.ObjectMeta{Name: "e2e-badcel"}})
		t.Fatal("invalid CEL accepted")
	}
	if !strings.Contains(err.Error(), "spec.claimMappings.username.expression") {
		t.Fatalf("refusal does not name the field: %v", err)
	}
}

// waitCondition waits for Ready with the given status and reason at the
// object's current generation, and returns it.
func waitCondition(t *testing.T, ctx context.Context, obj client.Object, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	eventually(t, ctx, fmt.Sprintf("%s Ready=%s/%s", obj.GetName(), status, reason), func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			if apierrors.IsNotFound(err) {
				return false, err
			}
			return false, err
		}
		var conds []metav1.Condition
		var observed int64
		switch o := obj.(type) {
		case *authnv1alpha1.StaticToken:
			conds, observed = o.Status.Conditions, o.Status.ObservedGeneration
		case *authnv1alpha1.JWTAuthenticator:
			conds, observed = o.Status.Conditions, o.Status.ObservedGeneration
		}
		c := meta.FindStatusCondition(conds, authnv1alpha1.ConditionReady)
		if c == nil || observed != obj.GetGeneration() {
			return false, nil
		}
		got = *c
		return c.Status == status && c.Reason == reason, fmt.Errorf("Ready=%s/%s: %s", c.Status, c.Reason, c.Message)
	})
	return got
}

// reviewToken asks the API server, as the admin, whether token
// authenticates for audiences.
func reviewToken(ctx context.Context, t *testing.T, token string, audiences []string) authenticationv1.TokenReviewStatus {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.ControlPlane.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status
}

// A static token is bound to the API server's own audiences: a TokenReview
// that asks whether it is good for another service is not authenticated.
func TestStaticTokenAudiences(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	_, token := user(t, ctx, "aud-user")
	for _, tc := range []struct {
		audiences []string
		want      bool
	}{
		{nil, true},
		{[]string{"https://kubernetes.default.svc.cluster.local"}, true}, // the API server's (its service-account issuer)
		{[]string{"vault"}, false},
		{[]string{"vault", "https://kubernetes.default.svc.cluster.local"}, true},
	} {
		st := reviewToken(ctx, t, token, tc.audiences)
		if st.Authenticated != tc.want {
			t.Errorf("TokenReview for audiences %q: %+v, want authenticated=%v", tc.audiences, st, tc.want)
		}
		if st.Authenticated && tc.audiences != nil && strings.Join(st.Audiences, ",") != "https://kubernetes.default.svc.cluster.local" {
			t.Errorf("TokenReview for audiences %q: audiences %q, want only the API server's", tc.audiences, st.Audiences)
		}
	}
}

// A second StaticToken on the same Secret does not take the token over: it
// reports Conflict, naming the first, and the token keeps its identity.
// When the first goes, the second takes over.
func TestStaticTokenConflict(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	_, token := user(t, ctx, "first-holder")
	// Creation times have a resolution of one second: the second holder
	// must be younger, or the first by name (it sorts first) would win.
	time.Sleep(1100 * time.Millisecond)
	apply(t, ctx, `
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-authz-aaa-second-holder}
spec:
  user: {username: second-holder, groups: ["system:masters"]}
  secretRef: {name: e2e-authz-first-holder-token}
`)
	second := &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-authz-aaa-second-holder"}}
	t.Cleanup(func() { deleteObj(t, second) })
	c := waitCondition(t, ctx, second, metav1.ConditionFalse, authnv1alpha1.ReasonConflict)
	if !strings.Contains(c.Message, `"e2e-authz-first-holder"`) || strings.Contains(c.Message, token) {
		t.Errorf("Conflict message %q: want it to name the StaticToken served, never the token", c.Message)
	}
	for range 3 {
		u, err := whoami(ctx, t, token)
		if err != nil || u.Username != "first-holder" || contains(u.Groups, "system:masters") {
			t.Fatalf("the token authenticates as %+v (%v), want first-holder", u, err)
		}
	}
	deleteObj(t, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-authz-first-holder"}})
	waitCondition(t, ctx, second, metav1.ConditionTrue, authnv1alpha1.ReasonLoaded)
}
