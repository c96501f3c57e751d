package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	celgo "github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/apis/apiserver"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	authenticationtokenjwt "k8s.io/apiserver/pkg/authentication/token/jwt"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/lazy"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
)

// ClockSkew is how far in the future nbf may be: one minute, the leeway
// the API server's own OIDC verifier (go-oidc) allows a token minted on a
// slightly fast clock. exp has none, as there: a token is expired from the
// second after its exp.
const ClockSkew = time.Minute

// MaxJWTLength caps the size of a token we try to parse as a JWT. Real
// ID tokens are a few KiB; the cap bounds the work an attacker can cause.
const MaxJWTLength = 64 << 10

// KeySet verifies a compact JWS and returns its payload. It is the interface
// of the API server's OIDC verifier (go-oidc's KeySet); internal/authn/jwks
// implements it for inline, Secret and URL key sets.
type KeySet interface {
	VerifySignature(ctx context.Context, jwt string) ([]byte, error)
}

// JWTAuthenticator is one compiled JWTAuthenticator object. It is immutable
// once built and safe for concurrent use.
type JWTAuthenticator struct {
	// Name of the JWTAuthenticator object.
	Name string
	// Issuer is the exact "iss" value this authenticator accepts.
	Issuer    string
	audiences sets.Set[string]
	keys      KeySet
	config    apiserver.JWTAuthenticator
	mapper    authenticationcel.CELMapper
	required  map[string]string
	now       func() time.Time
}

// ToAPIServer converts the spec to the API server's own JWT authenticator
// configuration type, whose field names it shares, so that validation and CEL
// compilation are exactly the API server's.
func ToAPIServer(spec *authnv1alpha1.JWTAuthenticatorSpec) apiserver.JWTAuthenticator {
	out := apiserver.JWTAuthenticator{
		Issuer: apiserver.Issuer{
			URL:                 spec.Issuer.URL,
			Audiences:           append([]string(nil), spec.Issuer.Audiences...),
			AudienceMatchPolicy: apiserver.AudienceMatchPolicyMatchAny,
		},
		ClaimMappings: apiserver.ClaimMappings{
			Username: apiserver.PrefixedClaimOrExpression{Claim: spec.ClaimMappings.Username.Claim, Prefix: spec.ClaimMappings.Username.Prefix, Expression: spec.ClaimMappings.Username.Expression},
			Groups:   apiserver.PrefixedClaimOrExpression{Claim: spec.ClaimMappings.Groups.Claim, Prefix: spec.ClaimMappings.Groups.Prefix, Expression: spec.ClaimMappings.Groups.Expression},
			UID:      apiserver.ClaimOrExpression{Claim: spec.ClaimMappings.UID.Claim, Expression: spec.ClaimMappings.UID.Expression},
		},
	}
	if len(spec.Issuer.Audiences) == 1 {
		// The API server requires the match policy only with several audiences.
		out.Issuer.AudienceMatchPolicy = ""
	}
	for _, e := range spec.ClaimMappings.Extra {
		out.ClaimMappings.Extra = append(out.ClaimMappings.Extra, apiserver.ExtraMapping{Key: e.Key, ValueExpression: e.ValueExpression})
	}
	for _, r := range spec.ClaimValidationRules {
		out.ClaimValidationRules = append(out.ClaimValidationRules, apiserver.ClaimValidationRule{Claim: r.Claim, RequiredValue: r.RequiredValue, Expression: r.Expression, Message: r.Message})
	}
	for _, r := range spec.UserValidationRules {
		out.UserValidationRules = append(out.UserValidationRules, apiserver.UserValidationRule{Expression: r.Expression, Message: r.Message})
	}
	return out
}

// ValidateJWTAuthenticatorSpec validates and compiles a spec with the API
// server's own validation (CEL included) and returns the compiled mapper.
// disallowedIssuers are the API server's service-account issuers, which it
// refuses for a JWT authenticator of its own: it verifies their tokens
// itself, and a second authenticator for them would accept what its own
// check refused (the token of a deleted service account, which the API
// server then tries on the webhook). Field paths are rooted at "spec", so
// messages name the field as the user wrote it.
func ValidateJWTAuthenticatorSpec(compiler authenticationcel.Compiler, spec *authnv1alpha1.JWTAuthenticatorSpec, disallowedIssuers []string) (authenticationcel.CELMapper, field.ErrorList) {
	mapper, errs := apiservervalidation.CompileAndValidateJWTAuthenticator(compiler, ToAPIServer(spec), disallowedIssuers)
	specPath := field.NewPath("spec")
	for _, e := range errs {
		if e.Field == "" || e.Field == "<nil>" {
			e.Field = specPath.String()
		} else {
			e.Field = specPath.String() + "." + e.Field
		}
	}
	return mapper, errs
}

// CompileJWT builds an authenticator from a spec and a key set, refusing
// disallowedIssuers as ValidateJWTAuthenticatorSpec does. Its errors are
// field errors naming the spec field at fault.
func CompileJWT(compiler authenticationcel.Compiler, name string, spec *authnv1alpha1.JWTAuthenticatorSpec, keys KeySet, now func() time.Time, disallowedIssuers []string) (*JWTAuthenticator, error) {
	mapper, errs := ValidateJWTAuthenticatorSpec(compiler, spec, disallowedIssuers)
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	if keys == nil {
		return nil, field.Required(field.NewPath("spec", "jwks"), "no key set")
	}
	if now == nil {
		now = time.Now
	}
	a := &JWTAuthenticator{
		Name:      name,
		Issuer:    spec.Issuer.URL,
		audiences: sets.New(spec.Issuer.Audiences...),
		keys:      keys,
		config:    ToAPIServer(spec),
		mapper:    mapper,
		required:  map[string]string{},
		now:       now,
	}
	for _, r := range spec.ClaimValidationRules {
		if r.Claim != "" {
			a.required[r.Claim] = r.RequiredValue
		}
	}
	return a, nil
}

// UnverifiedIssuer returns the "iss" claim of something shaped like a compact
// JWS without checking the signature: only to pick the authenticator that
// will then verify it. ok is false for anything that is not a JWT.
func UnverifiedIssuer(token string) (iss string, ok bool) {
	if len(token) > MaxJWTLength || strings.Count(token, ".") != 2 {
		return "", false
	}
	first := strings.IndexByte(token, '.')
	rest := token[first+1:]
	payload := rest[:strings.IndexByte(rest, '.')]
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", false
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.Issuer == "" {
		return "", false
	}
	return c.Issuer, true
}

// AuthenticateToken verifies the token's signature, issuer, audience and
// validity period, then maps its claims to a user exactly as the API
// server's JWT authenticator does. Every failure is an error whose message
// is for the operator's log, never for the client.
func (a *JWTAuthenticator) AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error) {
	payload, err := a.keys.VerifySignature(ctx, token)
	if err != nil {
		return nil, false, fmt.Errorf("jwt %s: %w", a.Name, err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, false, fmt.Errorf("jwt %s: claims are not a JSON object: %w", a.Name, err)
	}
	valid, err := a.checkStandardClaims(c)
	if err != nil {
		return nil, false, fmt.Errorf("jwt %s: %w", a.Name, err)
	}
	info, err := a.mapUser(ctx, c)
	if err != nil {
		return nil, false, fmt.Errorf("jwt %s: %w", a.Name, err)
	}
	return &authenticator.Response{User: info, Audiences: boundAudiences(ctx, valid)}, true, nil
}

// boundAudiences is what a JWT authenticates for: the audiences it is
// valid for (its aud claim among the authenticator's audiences),
// intersected with those the review asks for when it asks. An empty result
// names none beyond the API server's own: as for the API server's JWT
// authenticator, which it wraps as audience-agnostic, the API server then
// accepts the token only if it asked for its own implicit audiences, so a
// TokenReview for another service's audience is not authenticated.
func boundAudiences(ctx context.Context, valid authenticator.Audiences) authenticator.Audiences {
	if want, limited := authenticator.AudiencesFrom(ctx); limited {
		return want.Intersect(valid)
	}
	return valid
}

// checkStandardClaims checks iss, aud, exp and nbf and returns the
// audiences the token is valid for: those of its aud claim that the
// authenticator accepts.
func (a *JWTAuthenticator) checkStandardClaims(c claims) (authenticator.Audiences, error) {
	var iss string
	if err := c.unmarshalClaim("iss", &iss); err != nil || iss != a.Issuer {
		return nil, fmt.Errorf("issuer %q does not match %q", iss, a.Issuer)
	}
	var aud stringOrArray
	if err := c.unmarshalClaim("aud", &aud); err != nil {
		return nil, fmt.Errorf("aud claim: %v", err)
	}
	var valid authenticator.Audiences
	for _, x := range aud {
		if a.audiences.Has(x) && !valid.Has(x) {
			valid = append(valid, x)
		}
	}
	if len(valid) == 0 {
		return nil, fmt.Errorf("audience %q is not one of %q", []string(aud), sets.List(a.audiences))
	}
	now := a.now()
	var exp float64
	if err := c.unmarshalClaim("exp", &exp); err != nil {
		return nil, fmt.Errorf("exp claim: %v", err)
	}
	if !validNumericDate(exp) {
		return nil, fmt.Errorf("exp claim %v is not a valid date", exp)
	}
	if unixTime(exp).Before(now) {
		return nil, fmt.Errorf("token expired at %s", unixTime(exp).UTC().Format(time.RFC3339))
	}
	if c.hasClaim("nbf") {
		var nbf float64
		if err := c.unmarshalClaim("nbf", &nbf); err != nil {
			return nil, fmt.Errorf("nbf claim: %v", err)
		}
		if !validNumericDate(nbf) {
			return nil, fmt.Errorf("nbf claim %v is not a valid date", nbf)
		}
		if now.Add(ClockSkew).Before(unixTime(nbf)) {
			return nil, fmt.Errorf("token not valid before %s", unixTime(nbf).UTC().Format(time.RFC3339))
		}
	}
	return valid, nil
}

// maxNumericDate is 9999-12-31T23:59:59Z. A NumericDate (RFC 7519) outside
// [0, maxNumericDate] is malformed; refusing it before converting keeps
// float-to-int conversion defined, so a bad nbf can never fail open.
const maxNumericDate = 253402300799

func validNumericDate(f float64) bool {
	return !math.IsNaN(f) && f >= 0 && f <= maxNumericDate
}

func unixTime(f float64) time.Time {
	return time.Unix(int64(f), 0) // whole seconds, as go-oidc reads a NumericDate
}

// mapUser follows k8s.io/apiserver/plugin/pkg/authenticator/token/oidc:
// username, groups, uid, extra, then required claims, claim validation
// rules and user validation rules.
func (a *JWTAuthenticator) mapUser(ctx context.Context, c claims) (*user.DefaultInfo, error) {
	var claimsValue *lazy.MapValue
	if a.mapper.Username != nil || a.mapper.Groups != nil || a.mapper.UID != nil || a.mapper.Extra != nil || a.mapper.ClaimValidationRules != nil {
		claimsValue = newClaimsValue(c)
	}
	username, err := a.username(ctx, c, claimsValue)
	if err != nil {
		return nil, err
	}
	info := &user.DefaultInfo{Name: username}
	if info.Groups, err = a.groups(ctx, c, claimsValue); err != nil {
		return nil, err
	}
	if info.UID, err = a.uid(ctx, c, claimsValue); err != nil {
		return nil, err
	}
	if info.Extra, err = a.extra(ctx, c, claimsValue); err != nil {
		return nil, err
	}
	for claim, want := range a.required {
		var got string
		if err := c.unmarshalClaim(claim, &got); err != nil {
			return nil, fmt.Errorf("required claim %s: %v", claim, err)
		}
		if got != want {
			return nil, fmt.Errorf("required claim %s does not have the required value", claim)
		}
	}
	if a.mapper.ClaimValidationRules != nil {
		results, err := a.mapper.ClaimValidationRules.EvalClaimMappings(ctx, claimsValue)
		if err != nil {
			return nil, fmt.Errorf("claim validation: %w", err)
		}
		if err := checkRules(results, func(e authenticationcel.ExpressionAccessor) string {
			if r, ok := e.(*authenticationcel.ClaimValidationCondition); ok {
				return r.Message
			}
			return ""
		}); err != nil {
			return nil, fmt.Errorf("claim validation: %w", err)
		}
	}
	if a.mapper.UserValidationRules != nil {
		results, err := a.mapper.UserValidationRules.EvalUser(ctx, newUserInfoValue(info))
		if err != nil {
			return nil, fmt.Errorf("user validation: %w", err)
		}
		if err := checkRules(results, func(e authenticationcel.ExpressionAccessor) string {
			if r, ok := e.(*authenticationcel.UserValidationCondition); ok {
				return r.Message
			}
			return ""
		}); err != nil {
			return nil, fmt.Errorf("user validation: %w", err)
		}
	}
	return info, nil
}

func (a *JWTAuthenticator) username(ctx context.Context, c claims, cv *lazy.MapValue) (string, error) {
	if a.mapper.Username != nil {
		r, err := a.mapper.Username.EvalClaimMapping(ctx, cv)
		if err != nil {
			return "", fmt.Errorf("username expression: %w", err)
		}
		s, ok := r.EvalResult.Value().(string)
		if !ok || r.EvalResult.Type() != celgo.StringType {
			return "", fmt.Errorf("username expression must return a string")
		}
		if s == "" {
			return "", fmt.Errorf("username expression returned an empty string")
		}
		return s, nil
	}
	m := a.config.ClaimMappings.Username
	var name string
	if err := c.unmarshalClaim(m.Claim, &name); err != nil {
		return "", fmt.Errorf("username claim %q: %v", m.Claim, err)
	}
	if m.Claim == "email" && c.hasClaim("email_verified") {
		var verified bool
		if err := c.unmarshalClaim("email_verified", &verified); err != nil || !verified {
			return "", fmt.Errorf("email not verified")
		}
	}
	if m.Prefix != nil {
		name = *m.Prefix + name
	}
	if name == "" {
		// The CEL path refuses an empty username; so does the claim path.
		return "", fmt.Errorf("username claim %q is empty", m.Claim)
	}
	return name, nil
}

func (a *JWTAuthenticator) groups(ctx context.Context, c claims, cv *lazy.MapValue) ([]string, error) {
	m := a.config.ClaimMappings.Groups
	if m.Claim != "" {
		if !c.hasClaim(m.Claim) {
			return nil, nil
		}
		var groups stringOrArray
		if err := c.unmarshalClaim(m.Claim, &groups); err != nil {
			return nil, fmt.Errorf("groups claim %q: %v", m.Claim, err)
		}
		if m.Prefix != nil && *m.Prefix != "" {
			for i := range groups {
				groups[i] = *m.Prefix + groups[i]
			}
		}
		return groups, nil
	}
	if a.mapper.Groups == nil {
		return nil, nil
	}
	r, err := a.mapper.Groups.EvalClaimMapping(ctx, cv)
	if err != nil {
		return nil, fmt.Errorf("groups expression: %w", err)
	}
	return celStringList(r.EvalResult)
}

func (a *JWTAuthenticator) uid(ctx context.Context, c claims, cv *lazy.MapValue) (string, error) {
	m := a.config.ClaimMappings.UID
	if m.Claim != "" {
		var uid string
		if err := c.unmarshalClaim(m.Claim, &uid); err != nil {
			return "", fmt.Errorf("uid claim %q: %v", m.Claim, err)
		}
		return uid, nil
	}
	if a.mapper.UID == nil {
		return "", nil
	}
	r, err := a.mapper.UID.EvalClaimMapping(ctx, cv)
	if err != nil {
		return "", fmt.Errorf("uid expression: %w", err)
	}
	s, ok := r.EvalResult.Value().(string)
	if !ok {
		return "", fmt.Errorf("uid expression must return a string")
	}
	return s, nil
}

func (a *JWTAuthenticator) extra(ctx context.Context, c claims, cv *lazy.MapValue) (map[string][]string, error) {
	extra := map[string][]string{}
	if c.hasClaim("jti") {
		var jti string
		if err := c.unmarshalClaim("jti", &jti); err == nil && jti != "" {
			// The API server records the token's ID the same way.
			extra[user.CredentialIDKey] = []string{authenticationtokenjwt.CredentialIDForJTI(jti)}
		}
	}
	if a.mapper.Extra != nil {
		results, err := a.mapper.Extra.EvalClaimMappings(ctx, cv)
		if err != nil {
			return nil, fmt.Errorf("extra expression: %w", err)
		}
		for _, r := range results {
			m, ok := r.ExpressionAccessor.(*authenticationcel.ExtraMappingExpression)
			if !ok {
				return nil, fmt.Errorf("extra expression: unexpected accessor %T", r.ExpressionAccessor)
			}
			values, err := celStringList(r.EvalResult)
			if err != nil {
				return nil, fmt.Errorf("extra %q: %w", m.Key, err)
			}
			if len(values) > 0 {
				extra[m.Key] = values
			}
		}
	}
	if len(extra) == 0 {
		return nil, nil
	}
	return extra, nil
}

func checkRules(results []authenticationcel.EvaluationResult, message func(authenticationcel.ExpressionAccessor) string) error {
	for _, r := range results {
		ok, isBool := r.EvalResult.Value().(bool)
		if !isBool {
			return fmt.Errorf("expression %q must return a boolean", r.ExpressionAccessor.GetExpression())
		}
		if !ok {
			return fmt.Errorf("expression %q failed: %s", r.ExpressionAccessor.GetExpression(), message(r.ExpressionAccessor))
		}
	}
	return nil
}

// claims holds a token's claims undecoded until a mapping reads them.
type claims map[string]json.RawMessage

func (c claims) unmarshalClaim(name string, v any) error {
	raw, ok := c[name]
	if !ok {
		return fmt.Errorf("claim not present")
	}
	return json.Unmarshal(raw, v)
}

func (c claims) hasClaim(name string) bool { _, ok := c[name]; return ok }

// stringOrArray accepts a claim that is a string or a list of strings, as
// the API server does for groups and aud.
type stringOrArray []string

func (s *stringOrArray) UnmarshalJSON(b []byte) error {
	var a []string
	if err := json.Unmarshal(b, &a); err == nil {
		*s = a
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*s = []string{one}
	return nil
}

func newClaimsValue(c claims) *lazy.MapValue {
	m := lazy.NewMapValue(types.NewObjectType("kubernetes.claims"))
	for name, raw := range c {
		m.Append(name, func(*lazy.MapValue) ref.Val {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return types.NewErr("claim %q failed to unmarshal: %v", name, err)
			}
			return types.DefaultTypeAdapter.NativeToValue(v)
		})
	}
	return m
}

func newUserInfoValue(info user.Info) *lazy.MapValue {
	m := lazy.NewMapValue(types.NewObjectType("kubernetes.UserInfo"))
	add := func(name string, get func() any) {
		m.Append(name, func(*lazy.MapValue) ref.Val { return types.DefaultTypeAdapter.NativeToValue(get()) })
	}
	add("username", func() any { return info.GetName() })
	add("uid", func() any { return info.GetUID() })
	add("groups", func() any { return info.GetGroups() })
	add("extra", func() any { return info.GetExtra() })
	return m
}

// celStringList turns a string or list-of-strings CEL result into a slice;
// "" and [] mean absent, as in the API server.
func celStringList(v ref.Val) ([]string, error) {
	switch v.Type().TypeName() {
	case celgo.StringType.TypeName():
		if s := v.Value().(string); s != "" {
			return []string{s}, nil
		}
		return nil, nil
	case celgo.NullType.TypeName():
		return nil, nil
	case celgo.ListType(nil).TypeName():
		var out []string
		switch l := v.Value().(type) {
		case []any:
			for _, e := range l {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("expression must return a string or a list of strings")
				}
				if s != "" {
					out = append(out, s)
				}
			}
		case []ref.Val:
			for _, e := range l {
				s, ok := e.Value().(string)
				if !ok {
					return nil, fmt.Errorf("expression must return a string or a list of strings")
				}
				if s != "" {
					out = append(out, s)
				}
			}
		default:
			return nil, fmt.Errorf("expression must return a string or a list of strings")
		}
		return out, nil
	}
	return nil, fmt.Errorf("expression must return a string or a list of strings")
}
