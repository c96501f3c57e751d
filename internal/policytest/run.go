package policytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	admission "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/authn/jwks"
	"github.com/portcullis-io/portcullis/internal/authz"
	authorizationwebhook "github.com/portcullis-io/portcullis/webhooks/authorization"
)

// DefaultAPIAudiences are the API server's audiences a suite assumes
// unless it says (Test.apiAudiences): kube-apiserver's default, its
// service account issuer, as kubeadm sets it.
var DefaultAPIAudiences = []string{"https://kubernetes.default.svc.cluster.local"}

// Result is one case's outcome.
type Result struct {
	Suite string `json:"suite"`
	File  string `json:"file"`
	Case  string `json:"case"`
	Phase string `json:"phase"`
	// Passed is false with Failures saying what differed.
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
	// Got is what the phase answered, for the report.
	Got string `json:"got"`
	// Object is the object admission admitted, after mutation.
	Object json.RawMessage `json:"object,omitempty"`
}

// Phases, as results name them.
const (
	PhaseAuthentication = "authentication"
	PhaseAuthorization  = "authorization"
	PhaseAdmission      = "admission"
)

// engines are the four phases' engines, loaded with one suite's policies
// exactly as the controllers load them (the same compile functions).
type engines struct {
	authn      *authn.Engine
	authz      *authz.Engine
	mutate     *admission.MutationEngine
	validate   *admission.ValidationEngine
	namespaces admission.Namespaces
	secrets    map[string]*corev1.Secret
	// apiAudiences are the API server's own audiences.
	apiAudiences []string
}

// Run runs every case of every suite.
func Run(ctx context.Context, suites []Suite) ([]Result, error) {
	var out []Result
	for _, s := range suites {
		results, err := runSuite(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%s: test %s: %w", s.File, s.Test.Metadata.Name, err)
		}
		out = append(out, results...)
	}
	return out, nil
}

func runSuite(ctx context.Context, s Suite) ([]Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the parameter informers
	e, err := build(ctx, s.Objects)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, c := range s.Test.Cases {
		r := e.run(ctx, c)
		r.Suite, r.File, r.Case = s.Test.Metadata.Name, s.File, c.Name
		r.Passed = len(r.Failures) == 0
		out = append(out, r)
	}
	return out, nil
}

// build compiles the policies. A policy that does not compile is an
// error of the suite, naming its field: a test never runs with part of
// its policies.
func build(ctx context.Context, o *Objects) (*engines, error) {
	var errs []string
	fail := func(kind, name string, el field.ErrorList) {
		errs = append(errs, fmt.Sprintf("%s %s does not compile: %v", kind, name, el.ToAggregate()))
	}
	e := &engines{namespaces: admission.Namespaces{}, secrets: o.Secrets, apiAudiences: o.APIAudiences}
	if len(e.apiAudiences) == 0 {
		e.apiAudiences = DefaultAPIAudiences
	}
	for name, ns := range o.Namespaces {
		e.namespaces[name] = ns
	}

	// Admission.
	compiler, err := admission.NewCompiler()
	if err != nil {
		return nil, err
	}
	params, err := newParamSource(ctx, o.Params)
	if err != nil {
		return nil, err
	}
	pair := admission.NewEngines(e, params)
	e.mutate, e.validate = pair.Mutation, pair.Validation
	mr, vr, xr := pair.Mutations, pair.Validations, pair.Exceptions
	compileEach(fail, "MutationPolicy", o.Mutations, func(p *admissionv1alpha1.MutationPolicy) (string, *admission.CompiledMutation, field.ErrorList) {
		withUID(&p.ObjectMeta)
		c, el := admission.CompileMutationPolicy(compiler, p)
		return p.Name, c, el
	}, mr.Set)
	compileEach(fail, "ValidationPolicy", o.Validations, func(p *admissionv1alpha1.ValidationPolicy) (string, *admission.CompiledValidation, field.ErrorList) {
		withUID(&p.ObjectMeta)
		c, el := admission.CompileValidationPolicy(compiler, p)
		return p.Name, c, el
	}, vr.Set)
	compileEach(fail, "PolicyException", o.Exceptions, func(x *admissionv1alpha1.PolicyException) (string, *admission.CompiledException, field.ErrorList) {
		c, el := admission.CompileException(x)
		return x.Name, c, el
	}, xr.Set)
	pair.MarkReady()

	// Authorization.
	authzCEL := authorizationcel.NewDefaultCompiler()
	e.authz = authz.NewEngine(namespaceLabels{e}, nil)
	ar := authz.NewRegistry(e.authz)
	compileEach(fail, "AccessPolicy", o.Access, func(p *authzv1alpha1.AccessPolicy) (string, *authz.Policy, field.ErrorList) {
		c, el := authz.Compile(authzCEL, p)
		return p.Name, c, el
	}, ar.Set)
	ar.MarkReady()

	// Authentication.
	e.authn = authn.NewEngine(time.Now)
	nr := authn.NewRegistry(e.authn)
	for _, st := range o.Static {
		token, err := e.secretValue(st.Spec.SecretRef.Name, st.Spec.SecretRef.Key, "token")
		if err == nil {
			err = authn.ValidStaticToken(token)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("StaticToken %s: spec.secretRef: %v", st.Name, err))
			continue
		}
		nr.SetStatic(st.Name, authn.NewStaticEntry(st, token))
	}
	authnCEL := authenticationcel.NewDefaultCompiler()
	for _, ja := range o.JWT {
		keys, err := e.keySet(ja.Spec.JWKS)
		if err == nil {
			var a *authn.JWTAuthenticator
			if a, err = authn.CompileJWT(authnCEL, ja.Name, &ja.Spec, keys, time.Now, nil); err == nil {
				nr.SetJWT(ja.Name, a)
				continue
			}
		}
		errs = append(errs, fmt.Sprintf("JWTAuthenticator %s: %v", ja.Name, err))
	}
	nr.MarkReady()
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return e, nil
}

// compileEach compiles each item and sets what compiles; what does not is
// reported to fail, by kind and name.
func compileEach[T, C any](fail func(kind, name string, el field.ErrorList), kind string, items []T, compile func(T) (string, C, field.ErrorList), set func(string, C)) {
	for _, item := range items {
		name, c, el := compile(item)
		if len(el) > 0 {
			fail(kind, name, el)
			continue
		}
		set(name, c)
	}
}

// withUID gives a policy read from a file the UID the API server would.
func withUID(m *metav1.ObjectMeta) {
	if m.UID == "" {
		m.UID = types.UID("portcullis-test-" + m.Name)
	}
}

// Get implements admission.NamespaceLister: the test's Namespaces, and
// any other as the API server creates it (with its name label).
func (e *engines) Get(name string) (*corev1.Namespace, error) { return e.namespaceOf(name), nil }

func (e *engines) namespaceOf(name string) *corev1.Namespace {
	if ns, ok := e.namespaces[name]; ok {
		ns = ns.DeepCopy()
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = name
		return ns
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelMetadataName: name}}}
}

type namespaceLabels struct{ e *engines }

func (n namespaceLabels) Labels(name string) (labels.Set, bool) {
	return labels.Set(n.e.namespaceOf(name).Labels), true
}

func (e *engines) secretValue(name, key, defaultKey string) (string, error) {
	if key == "" {
		key = defaultKey
	}
	s, ok := e.secrets[name]
	if !ok {
		return "", fmt.Errorf("Secret %s is not among the objects loaded", name)
	}
	v, ok := s.Data[key]
	if !ok {
		return "", fmt.Errorf("Secret %s has no key %q", name, key)
	}
	return strings.TrimSpace(string(v)), nil
}

func (e *engines) keySet(src authnv1alpha1.JWKSSource) (authn.KeySet, error) {
	data := src.Inline
	if src.SecretRef != nil {
		v, err := e.secretValue(src.SecretRef.Name, src.SecretRef.Key, "")
		if err != nil {
			return nil, fmt.Errorf("spec.jwks.secretRef: %v", err)
		}
		data = v
	}
	if data == "" {
		return nil, errors.New("spec.jwks: portcullis test reads key sets inline or from a Secret among the test's objects, not from a URL")
	}
	return jwks.NewStatic([]byte(data))
}

func (e *engines) run(ctx context.Context, c Case) Result {
	switch {
	case c.Authentication != nil:
		return e.authenticate(ctx, c.Authentication, c.Expect)
	case c.Authorization != nil:
		return e.authorize(ctx, c.Authorization, c.Expect)
	default:
		return e.admit(ctx, c.Admission, c.Expect)
	}
}

func (e *engines) authenticate(ctx context.Context, in *AuthenticationInput, want Expect) Result {
	r := Result{Phase: PhaseAuthentication}
	token := in.Token
	if in.TokenFrom != nil {
		v, err := e.secretValue(in.TokenFrom.Name, in.TokenFrom.Key, "token")
		if err != nil {
			r.Failures = append(r.Failures, "tokenFrom: "+err.Error())
			return r
		}
		token = v
	}
	audiences := in.Audiences
	if len(audiences) == 0 {
		// As the API server sends its own reviews: for its audiences.
		audiences = e.apiAudiences
	}
	ctx = authenticator.WithAudiences(ctx, audiences)
	resp, _, ok := e.authn.Authenticate(ctx, token)
	if ok {
		// As the API server reads the answer: the audiences the
		// authenticator gives, or, when it gives none (a static token),
		// the API server's own (its --api-audiences), must include one
		// the review asked for.
		have := resp.Audiences
		if len(have) == 0 {
			have = e.apiAudiences
		}
		ok = intersects(audiences, have)
	}
	var got *authenticationv1.UserInfo
	if ok {
		u := resp.User
		got = &authenticationv1.UserInfo{Username: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups()}
		if x := u.GetExtra(); len(x) > 0 {
			got.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range x {
				got.Extra[k] = v
			}
		}
		r.Got = fmt.Sprintf("authenticated as %q, groups %v", got.Username, got.Groups)
	} else {
		r.Got = "not authenticated"
	}
	if want.Authenticated != nil && *want.Authenticated != ok {
		r.Failures = append(r.Failures, fmt.Sprintf("authenticated: got %v, want %v", ok, *want.Authenticated))
	}
	if w := want.User; w != nil {
		switch {
		case got == nil:
			r.Failures = append(r.Failures, fmt.Sprintf("user: not authenticated, want %q", w.Username))
		default:
			r.Failures = append(r.Failures, compareUser(got, w)...)
		}
	}
	return r
}

func extraEqual(a, b map[string]authenticationv1.ExtraValue) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func compareUser(got, want *authenticationv1.UserInfo) []string {
	var f []string
	if want.Username != "" && got.Username != want.Username {
		f = append(f, fmt.Sprintf("user.username: got %q, want %q", got.Username, want.Username))
	}
	if want.UID != "" && got.UID != want.UID {
		f = append(f, fmt.Sprintf("user.uid: got %q, want %q", got.UID, want.UID))
	}
	if want.Groups != nil && !slices.Equal(got.Groups, want.Groups) {
		f = append(f, fmt.Sprintf("user.groups: got %v, want %v", got.Groups, want.Groups))
	}
	if want.Extra != nil && !extraEqual(got.Extra, want.Extra) {
		f = append(f, fmt.Sprintf("user.extra: got %v, want %v", got.Extra, want.Extra))
	}
	return f
}

func (e *engines) authorize(ctx context.Context, in *AuthorizationInput, want Expect) Result {
	r := Result{Phase: PhaseAuthorization}
	spec := in.SubjectAccessReview
	if spec == nil {
		var err error
		if spec, err = parseRequest(in); err != nil {
			r.Failures = append(r.Failures, "request: "+err.Error())
			return r
		}
	}
	attrs := authorizationwebhook.AttributesFrom(spec)
	ctx = authz.WithReview(ctx, &authorizationv1.SubjectAccessReview{Spec: *spec})
	decision, reason, err := e.authz.Authorize(ctx, attrs)
	got := map[authorizer.Decision]string{authorizer.DecisionAllow: "Allow", authorizer.DecisionDeny: "Deny", authorizer.DecisionNoOpinion: "NoOpinion"}[decision]
	r.Got = got
	if reason != "" {
		r.Got += ": " + reason
	}
	if err != nil {
		r.Got += " (evaluation error: " + err.Error() + ")"
	}
	if want.Decision != "" && want.Decision != got {
		r.Failures = append(r.Failures, fmt.Sprintf("decision: got %s, want %s", got, want.Decision))
	}
	if want.ReasonContains != "" && !strings.Contains(reason, want.ReasonContains) {
		r.Failures = append(r.Failures, fmt.Sprintf("reason: got %q, want it to contain %q", reason, want.ReasonContains))
	}
	r.Failures = append(r.Failures, checkError(err, want.ErrorContains)...)
	return r
}

// parseRequest reads the USER/VERB/RESOURCE shorthand.
func parseRequest(in *AuthorizationInput) (*authorizationv1.SubjectAccessReviewSpec, error) {
	parts := strings.SplitN(in.Request, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, fmt.Errorf("%q is not USER/VERB/RESOURCE (bob/get/pods, bob/get/pods/log, bob/list/deployments.apps, bob/get//healthz)", in.Request)
	}
	spec := &authorizationv1.SubjectAccessReviewSpec{User: parts[0], Groups: append(append([]string(nil), in.Groups...), "system:authenticated")}
	verb, res := parts[1], parts[2]
	if strings.HasPrefix(res, "/") {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Verb: verb, Path: res}
		return spec, nil
	}
	ra := &authorizationv1.ResourceAttributes{Verb: verb, Namespace: in.Namespace, Name: in.Name, Version: "*"}
	resource, sub, _ := strings.Cut(res, "/")
	if name, group, ok := strings.Cut(resource, "."); ok {
		ra.Resource, ra.Group = name, group
	} else {
		ra.Resource = resource
	}
	ra.Subresource = sub
	spec.ResourceAttributes = ra
	return spec, nil
}

// checkErrors checks that one of errs contains want, when it is given.
func checkErrors(errs []string, want string, say func(string) string) []string {
	if want == "" {
		return nil
	}
	for _, e := range errs {
		if strings.Contains(e, want) {
			return nil
		}
	}
	if len(errs) == 0 {
		return []string{fmt.Sprintf("error: none, want one containing %q", want)}
	}
	return []string{fmt.Sprintf("errors: %s, want one containing %q", say(fmt.Sprintf("%q", errs)), want)}
}

func checkError(err error, want string) []string {
	switch {
	case want == "" && err != nil:
		return nil // reported in Got; the decision is what is checked
	case want != "" && err == nil:
		return []string{fmt.Sprintf("error: none, want one containing %q", want)}
	case want != "" && !strings.Contains(err.Error(), want):
		return []string{fmt.Sprintf("error: got %q, want it to contain %q", err, want)}
	}
	return nil
}

// admitted is admission's answer to one request.
type admitted struct {
	allowed  bool
	message  string
	warnings []string
	object   []byte // admitted, after mutation
	err      error
	// policyErrors are the policies that could not be evaluated, each
	// handled by its failurePolicy (a rejection, or skipped).
	policyErrors []string
}

// admitRequest runs the request through mutating then validating
// admission, as the API server does, and applies the mutations a second
// time to what they produced: the result must not change (the API server
// may reinvoke the webhook); a change is a failure of the Result.
func (e *engines) admitRequest(ctx context.Context, req *admissionv1.AdmissionRequest) (Result, admitted) {
	r := Result{Phase: PhaseAdmission}
	a := admitted{allowed: true, object: req.Object.Raw}
	m := e.mutate.Mutate(ctx, req)
	a.warnings = append(a.warnings, m.WarningMessages()...)
	for _, pe := range m.Errors {
		a.policyErrors = append(a.policyErrors, fmt.Sprintf("%s %s: %v", pe.Kind, pe.Policy, pe.Err))
	}
	switch {
	case m.Err() != nil:
		a.err = fmt.Errorf("mutating: %w", m.Err())
	case m.Rejection() != "":
		a.allowed, a.message = false, m.Rejection()
	default:
		mutated, err := applyPatch(&m, a.object)
		if err != nil {
			a.err = err
			break
		}
		if len(mutated) > 0 && len(a.object) > 0 && string(mutated) != string(a.object) {
			again := *req
			again.Object = runtime.RawExtension{Raw: mutated}
			m2 := e.mutate.Mutate(ctx, &again)
			twice, err := applyPatch(&m2, mutated)
			switch {
			case m2.Err() != nil || m2.Rejection() != "" || err != nil:
				var why []string
				if m2.Err() != nil {
					why = append(why, m2.Err().Error())
				}
				if m2.Rejection() != "" {
					why = append(why, m2.Rejection())
				}
				if err != nil {
					why = append(why, err.Error())
				}
				r.Failures = append(r.Failures, "mutations applied again to what they produced fail: "+reported(req)(strings.Join(why, "; ")))
			case !jsonEqual(twice, mutated):
				r.Failures = append(r.Failures, "mutations are not idempotent: applied again to what they produced, they change it:\n"+objectDiff(mutated, twice))
			}
		}
		a.object = mutated
	}
	if a.err == nil && a.allowed {
		vreq := *req
		vreq.Object = runtime.RawExtension{Raw: a.object}
		v := e.validate.Validate(ctx, &vreq)
		a.warnings = append(a.warnings, v.WarningMessages()...)
		for _, pe := range v.Errors {
			a.policyErrors = append(a.policyErrors, fmt.Sprintf("%s %s: %v", pe.Kind, pe.Policy, pe.Err))
		}
		switch {
		case v.Err() != nil:
			a.err = fmt.Errorf("validating: %w", v.Err())
		case !v.Allowed():
			a.allowed, a.message = false, v.DenyMessage()
		}
	}
	say := reported(req)
	switch {
	case a.err != nil:
		r.Got = "error: " + say(a.err.Error())
	case a.allowed:
		r.Got = "admitted"
		r.Object = redacted(a.object)
	default:
		r.Got = "denied: " + say(a.message)
	}
	if len(a.warnings) > 0 {
		r.Got += fmt.Sprintf(" (warnings: %s)", say(fmt.Sprintf("%q", a.warnings)))
	}
	return r, a
}

// reported is how a report shows what policies and engines said of the
// request's object: as it is, but for a Secret's, which message
// expressions and errors may quote its data from, and reports never show.
// The expectations are checked against what was said all the same.
func reported(req *admissionv1.AdmissionRequest) func(string) string {
	if req.Kind.Group != "" || req.Kind.Kind != "Secret" {
		return func(s string) string { return s }
	}
	return func(string) string { return "(not reported for a Secret: it may quote its data)" }
}

// admit checks admission's answer to the input against want.
func (e *engines) admit(ctx context.Context, in *AdmissionInput, want Expect) Result {
	req, err := admissionRequest(in)
	if err != nil {
		return Result{Phase: PhaseAdmission, Failures: []string{err.Error()}}
	}
	r, a := e.admitRequest(ctx, req)
	say := reported(req)
	phaseErr, allowed, message, warnings, object := a.err, a.allowed, a.message, a.warnings, a.object
	if phaseErr != nil && want.ErrorContains == "" {
		r.Failures = append(r.Failures, "error: "+say(phaseErr.Error()))
	}
	errs := a.policyErrors
	if phaseErr != nil {
		errs = append(errs, phaseErr.Error())
	}
	r.Failures = append(r.Failures, checkErrors(errs, want.ErrorContains, say)...)
	if phaseErr != nil {
		return r
	}
	if want.Allowed != nil && *want.Allowed != allowed {
		r.Failures = append(r.Failures, fmt.Sprintf("allowed: got %v, want %v", allowed, *want.Allowed))
	}
	if want.MessageContains != "" && !strings.Contains(message, want.MessageContains) {
		r.Failures = append(r.Failures, fmt.Sprintf("message: got %s, want it to contain %q", say(fmt.Sprintf("%q", message)), want.MessageContains))
	}
	if want.Warnings != nil && !slices.Equal(warnings, want.Warnings) {
		r.Failures = append(r.Failures, fmt.Sprintf("warnings: got %s, want %q", say(fmt.Sprintf("%q", warnings)), want.Warnings))
	}
	if want.Object != nil {
		w, err := json.Marshal(want.Object)
		if err == nil && !jsonEqual(object, w) {
			r.Failures = append(r.Failures, "object: the admitted object differs (- want, + got):\n"+objectDiff(w, object))
		}
	}
	return r
}

// admissionRequest is the AdmissionReview request the API server would
// send for the input.
func admissionRequest(in *AdmissionInput) (*admissionv1.AdmissionRequest, error) {
	op := admissionv1.Operation(strings.ToUpper(in.Operation))
	if op == "" {
		op = admissionv1.Create
	}
	switch {
	case op != admissionv1.Create && op != admissionv1.Update && op != admissionv1.Delete && op != admissionv1.Connect:
		return nil, fmt.Errorf("admission: operation %q is not CREATE, UPDATE, DELETE or CONNECT", in.Operation)
	case op == admissionv1.Create && (in.Object == nil || in.OldObject != nil):
		return nil, errors.New("admission: a CREATE has an object and no oldObject")
	case op == admissionv1.Update && (in.Object == nil || in.OldObject == nil):
		return nil, errors.New("admission: an UPDATE has an object and an oldObject")
	case op == admissionv1.Delete && (in.Object != nil || in.OldObject == nil):
		return nil, errors.New("admission: a DELETE has an oldObject and no object")
	}
	obj := in.Object
	if obj == nil {
		obj = in.OldObject
	}
	if obj == nil {
		return nil, errors.New("admission: set object (or oldObject for DELETE)")
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" {
		return nil, errors.New("admission: the object has no apiVersion or kind")
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, fmt.Errorf("admission: apiVersion: %v", err)
	}
	gvk := gv.WithKind(kind)
	gvr, _ := apimeta.UnsafeGuessKindToResource(gvk)
	if in.Resource != "" {
		gvr.Resource = in.Resource
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	var ns string
	switch own, _ := meta["namespace"].(string); {
	case in.Namespace != nil:
		ns = *in.Namespace
	case own != "":
		ns = own
	case !clusterScoped[gvk.GroupKind()]:
		ns = corev1.NamespaceDefault
	}
	// The API server sets the request's namespace in the objects.
	for _, o := range []map[string]any{in.Object, in.OldObject} {
		if m, ok := o["metadata"].(map[string]any); ok && ns != "" {
			if _, set := m["namespace"]; !set {
				m["namespace"] = ns
			}
		}
	}
	u := authenticationv1.UserInfo{Username: "test-user", Groups: []string{"system:authenticated"}}
	if in.User != nil {
		u = *in.User
	}
	req := &admissionv1.AdmissionRequest{
		UID: types.UID("portcullis-test"), Kind: metav1.GroupVersionKind(gvk), Resource: metav1.GroupVersionResource(gvr),
		RequestKind: ptrTo(metav1.GroupVersionKind(gvk)), RequestResource: ptrTo(metav1.GroupVersionResource(gvr)),
		SubResource: in.SubResource, RequestSubResource: in.SubResource,
		Name: name, Namespace: ns, Operation: op, UserInfo: u, DryRun: &in.DryRun,
	}
	if in.Object != nil {
		if req.Object.Raw, err = json.Marshal(in.Object); err != nil {
			return nil, err
		}
	}
	if in.OldObject != nil {
		if req.OldObject.Raw, err = json.Marshal(in.OldObject); err != nil {
			return nil, err
		}
	}
	return req, nil
}

func ptrTo[T any](v T) *T { return &v }

// clusterScoped are the built-in kinds that have no namespace, so that a
// request for one gets none.
var clusterScoped = map[schema.GroupKind]bool{
	{Kind: "Namespace"}: true, {Kind: "Node"}: true, {Kind: "PersistentVolume"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}: true, {Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}: true, {Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:   true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                             true,
}

// applyPatch applies a mutation's answer to the object, as the API server
// applies a webhook's JSON patch.
func applyPatch(m *admission.MutateResult, object []byte) ([]byte, error) {
	p, err := m.PatchJSON()
	if err != nil || p == nil {
		return object, err
	}
	patch, err := jsonpatch.DecodePatch(p)
	if err != nil {
		return nil, fmt.Errorf("the mutation's patch: %w", err)
	}
	out, err := patch.Apply(object)
	if err != nil {
		return nil, fmt.Errorf("applying the mutation's patch: %w", err)
	}
	return out, nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func objectDiff(want, got []byte) string {
	var x, y any
	_ = json.Unmarshal(redacted(want), &x)
	_ = json.Unmarshal(redacted(got), &y)
	return diff.Diff(x, y)
}

// redacted is a JSON object with the values of a Secret's data and
// stringData replaced, for reports: they never show Secret data.
func redacted(object []byte) []byte {
	var o map[string]any
	if json.Unmarshal(object, &o) != nil || o["apiVersion"] != "v1" || o["kind"] != "Secret" {
		return object
	}
	for _, field := range []string{"data", "stringData"} {
		if m, ok := o[field].(map[string]any); ok {
			for k := range m {
				m[k] = "<redacted>"
			}
		}
	}
	out, err := json.Marshal(o)
	if err != nil {
		return nil
	}
	return out
}
