// Package explain answers "why was my request allowed or refused?"
// against a live cluster: for a user (the caller, or one impersonated) and
// a request or a manifest, each phase's answer in the API server's order,
// which Portcullis policies matched and which did not, what the API
// server's whole authorizer chain (RBAC included) says, and what a
// server-side dry run through admission says. `portcullis explain`.
package explain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/authz"
	"github.com/portcullis-io/portcullis/internal/policytest"
	authorizationwebhook "github.com/portcullis-io/portcullis/webhooks/authorization"
)

// Request is what to explain: a request by verb and resource, or the
// create of a manifest. User empty explains the caller.
type Request struct {
	User   string
	Groups []string

	Verb, Resource, Subresource, Name, Namespace string
	// Manifest, when set, is an object whose create is explained through
	// every phase, admission included.
	Manifest *unstructured.Unstructured
}

// Row is one phase's answer.
type Row struct {
	Phase, Answer, By, Details string
	// Matched and Unmatched are the Portcullis policies of the phase whose
	// match did and did not select the request.
	Matched, Unmatched []string
}

// Explain asks the cluster at cfg. The caller needs to create
// SubjectAccessReviews, list the policy kinds and namespaces, and, to
// explain another user, impersonate them.
func Explain(ctx context.Context, cfg *rest.Config, req Request) ([]Row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the parameter informers
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	x := &explainer{cfg: cfg, cs: cs, dyn: dyn, mapper: mapper}
	return x.explain(ctx, req)
}

type explainer struct {
	cfg    *rest.Config
	cs     kubernetes.Interface
	dyn    dynamic.Interface
	mapper apimeta.RESTMapper
}

func (x *explainer) explain(ctx context.Context, req Request) ([]Row, error) {
	var rows []Row
	// Authentication: who the request is from.
	user := authenticationv1.UserInfo{Username: req.User, Groups: req.Groups}
	authnRow := Row{Phase: "authentication"}
	if req.User == "" {
		r, err := x.cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("asking who the caller is (SelfSubjectReview): %w", err)
		}
		user = r.Status.UserInfo
		authnRow.By = "the caller's credentials"
	} else {
		if !contains(user.Groups, "system:authenticated") {
			user.Groups = append(user.Groups, "system:authenticated")
		}
		authnRow.By = "impersonation"
	}
	authnRow.Answer = user.Username
	authnRow.Details = "groups " + strings.Join(user.Groups, ", ")
	rows = append(rows, authnRow)

	// The request's attributes.
	ra := &authorizationv1.ResourceAttributes{Verb: req.Verb, Namespace: req.Namespace, Name: req.Name, Subresource: req.Subresource}
	var gvk schema.GroupVersionKind
	var gvr schema.GroupVersionResource
	if req.Manifest != nil {
		gvk = req.Manifest.GroupVersionKind()
		m, err := x.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, fmt.Errorf("the manifest's kind %s: %w", gvk, err)
		}
		gvr = m.Resource
		ra.Verb, ra.Name = "create", req.Manifest.GetName()
		if m.Scope.Name() == apimeta.RESTScopeNameNamespace {
			if req.Manifest.GetNamespace() == "" {
				req.Manifest.SetNamespace(orDefault(req.Namespace))
			}
			ra.Namespace = req.Manifest.GetNamespace()
		}
	} else {
		res, group, _ := strings.Cut(req.Resource, ".")
		var err error
		gvr, err = x.mapper.ResourceFor(schema.GroupVersionResource{Group: group, Resource: res})
		if err != nil {
			return nil, fmt.Errorf("resource %q: %w", req.Resource, err)
		}
	}
	ra.Group, ra.Version, ra.Resource = gvr.Group, gvr.Version, gvr.Resource

	authzRow, err := x.authorize(ctx, user, ra)
	if err != nil {
		return nil, err
	}
	rows = append(rows, authzRow)
	if req.Manifest == nil {
		return rows, nil
	}
	var as *rest.ImpersonationConfig
	if req.User != "" {
		// The API server adds system:authenticated to whom it impersonates.
		as = &rest.ImpersonationConfig{UserName: req.User, Groups: req.Groups}
	}
	mrows, err := x.admit(ctx, user, as, req.Manifest, gvk, gvr, authzRow.Answer == "allowed")
	if err != nil {
		return nil, err
	}
	return append(rows, mrows...), nil
}

// authorize asks the API server (its whole chain: Portcullis, then RBAC)
// and says which AccessPolicies match.
func (x *explainer) authorize(ctx context.Context, user authenticationv1.UserInfo, ra *authorizationv1.ResourceAttributes) (Row, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{User: user.Username, UID: user.UID, Groups: user.Groups, ResourceAttributes: ra}
	if len(user.Extra) > 0 {
		spec.Extra = map[string]authorizationv1.ExtraValue{}
		for k, v := range user.Extra {
			spec.Extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	sar, err := x.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return Row{}, fmt.Errorf("asking the API server (SubjectAccessReview): %w", err)
	}
	row := Row{Phase: "authorization"}
	switch {
	case sar.Status.Allowed:
		row.Answer = "allowed"
	case sar.Status.Denied:
		row.Answer = "denied"
	default:
		row.Answer = "denied"
	}
	row.Details = sar.Status.Reason
	if row.Details == "" {
		row.Details = "no authorizer allowed it"
	}

	// Which AccessPolicies match, each evaluated alone with the engine.
	list := &authzv1alpha1.AccessPolicyList{}
	if err := x.list(ctx, authzv1alpha1.GroupVersion.WithResource("accesspolicies"), list); err != nil {
		return Row{}, err
	}
	labelsOf, err := x.namespaceLabels(ctx)
	if err != nil {
		return Row{}, err
	}
	compiler := authorizationcel.NewDefaultCompiler()
	attrs := authorizationwebhook.AttributesFrom(&spec)
	ctx = authz.WithReview(ctx, &authorizationv1.SubjectAccessReview{Spec: spec})
	for i := range list.Items {
		p := &list.Items[i]
		c, errs := authz.Compile(compiler, p)
		if c == nil {
			row.Unmatched = append(row.Unmatched, fmt.Sprintf("AccessPolicy/%s (does not compile: %v)", p.Name, errs.ToAggregate()))
			continue
		}
		e := authz.NewEngine(labelsOf, nil)
		r := authz.NewRegistry(e)
		r.Set(p.Name, c)
		r.MarkReady()
		d, _, err := e.Authorize(ctx, attrs)
		name := fmt.Sprintf("AccessPolicy/%s (%s, %s)", p.Name, p.Spec.Effect, orDefault2(string(p.Spec.Enforcement), "Enforce"))
		if c := apimeta.FindStatusCondition(p.Status.Conditions, "Ready"); c != nil && c.Status != metav1.ConditionTrue {
			name += " (not served: " + c.Reason + ")"
		}
		switch {
		case err != nil:
			row.Matched = append(row.Matched, name+": cannot be evaluated: "+err.Error())
		case d == authorizer.DecisionAllow || d == authorizer.DecisionDeny:
			row.Matched = append(row.Matched, name)
		default:
			row.Unmatched = append(row.Unmatched, name)
		}
	}
	// Who decided is what the API server says, not what the local
	// evaluation guesses.
	switch reason := sar.Status.Reason; {
	case strings.Contains(reason, "AccessPolicy "):
		row.By = strings.Trim(reason[strings.Index(reason, "AccessPolicy "):], " ") + " (RBAC not consulted)"
	case strings.HasPrefix(reason, "RBAC"):
		row.By = "RBAC (no Portcullis policy decided)"
	case sar.Status.Allowed:
		row.By = "the authorizer chain"
	default:
		row.By = "the authorizer chain (nothing allowed it)"
	}
	return row, nil
}

// admit dry-runs the create as the user and says which admission
// policies match.
func (x *explainer) admit(ctx context.Context, user authenticationv1.UserInfo, as *rest.ImpersonationConfig, obj *unstructured.Unstructured, gvk schema.GroupVersionKind, gvr schema.GroupVersionResource, authorized bool) ([]Row, error) {
	mrow, vrow := Row{Phase: "mutating admission"}, Row{Phase: "validating admission"}
	// Matching, offline, with the cluster's policies and namespaces.
	raw, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	areq := &admissionv1.AdmissionRequest{
		UID: types.UID("explain"), Kind: metav1.GroupVersionKind(gvk), Resource: metav1.GroupVersionResource(gvr),
		RequestKind: ptr(metav1.GroupVersionKind(gvk)), RequestResource: ptr(metav1.GroupVersionResource(gvr)),
		Name: obj.GetName(), Namespace: obj.GetNamespace(), Operation: admissionv1.Create, UserInfo: user,
		Object: runtime.RawExtension{Raw: raw}, DryRun: ptr(true),
	}
	namespaces, err := x.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	compiler, err := admission.NewCompiler()
	if err != nil {
		return nil, err
	}
	muts := &admissionv1alpha1.MutationPolicyList{}
	if err := x.list(ctx, admissionv1alpha1.GroupVersion.WithResource("mutationpolicies"), muts); err != nil {
		return nil, err
	}
	vals := &admissionv1alpha1.ValidationPolicyList{}
	if err := x.list(ctx, admissionv1alpha1.GroupVersion.WithResource("validationpolicies"), vals); err != nil {
		return nil, err
	}
	// Compiled once; the parameter kinds they name are read from the
	// cluster, and the PolicyExceptions apply, as in the operator.
	compiledM := make([]*admission.CompiledMutation, len(muts.Items))
	compiledV := make([]*admission.CompiledValidation, len(vals.Items))
	kinds := map[schema.GroupVersionKind]bool{}
	for i := range muts.Items {
		if c, errs := admission.CompileMutationPolicy(compiler, &muts.Items[i]); len(errs) == 0 {
			compiledM[i] = c
			kinds[c.ParamKind()] = true
		}
	}
	for i := range vals.Items {
		if c, errs := admission.CompileValidationPolicy(compiler, &vals.Items[i]); len(errs) == 0 {
			compiledV[i] = c
			kinds[c.ParamKind()] = true
		}
	}
	wire, err := x.wiring(ctx, kinds)
	if err != nil {
		return nil, err
	}

	all, _ := wire(namespaces)
	allReg := admission.NewMutationRegistry(all)
	for i := range muts.Items {
		p, c := &muts.Items[i], compiledM[i]
		name := "MutationPolicy/" + p.Name + execution(p.Status.Execution)
		if c == nil {
			mrow.Matched = append(mrow.Matched, name+" (does not compile: its failurePolicy applies)")
			continue
		}
		allReg.Set(p.Name, c)
		e, _ := wire(namespaces)
		r := admission.NewMutationRegistry(e)
		r.Set(p.Name, c)
		r.MarkReady()
		switch res := e.Mutate(ctx, areq); {
		case len(res.Exempted) > 0:
			mrow.Unmatched = append(mrow.Unmatched, name+" (exempted by PolicyException "+res.Exempted[0].Exception+")")
		case len(res.Errors) > 0:
			mrow.Matched = append(mrow.Matched, name+": cannot be evaluated: "+res.Errors[0].Err.Error())
		case len(res.Matched) > 0:
			mrow.Matched = append(mrow.Matched, name)
		default:
			mrow.Unmatched = append(mrow.Unmatched, name)
		}
	}
	allReg.MarkReady()
	var patchPaths []string
	vreq := *areq // validation sees the object the mutations produced
	if res := all.Mutate(ctx, areq); res.Err() == nil {
		for _, op := range res.Patch {
			patchPaths = append(patchPaths, op.Operation+" "+op.Path)
		}
		if p, err := res.PatchJSON(); err == nil && p != nil {
			if patch, err := jsonpatch.DecodePatch(p); err == nil {
				if out, err := patch.Apply(raw); err == nil {
					vreq.Object = runtime.RawExtension{Raw: out}
				}
			}
		}
	}
	for i := range vals.Items {
		p, c := &vals.Items[i], compiledV[i]
		name := fmt.Sprintf("ValidationPolicy/%s (%s)%s", p.Name, p.Spec.Action, execution(p.Status.Execution))
		if c == nil {
			vrow.Matched = append(vrow.Matched, name+" (does not compile: its failurePolicy applies)")
			continue
		}
		_, e := wire(namespaces)
		r := admission.NewValidationRegistry(e)
		r.Set(p.Name, c)
		r.MarkReady()
		res := e.Validate(ctx, &vreq)
		switch {
		case len(res.Exempted) > 0:
			vrow.Unmatched = append(vrow.Unmatched, name+" (exempted by PolicyException "+res.Exempted[0].Exception+")")
		case len(res.Denials) > 0 || len(res.Warnings) > 0 || len(res.Audits) > 0:
			vrow.Matched = append(vrow.Matched, name+": "+violation(res))
		case len(res.Errors) > 0:
			vrow.Matched = append(vrow.Matched, name+": cannot be evaluated: "+res.Errors[0].Err.Error())
		case len(res.Matched) > 0:
			vrow.Matched = append(vrow.Matched, name+": passes")
		default:
			vrow.Unmatched = append(vrow.Unmatched, name)
		}
	}
	sort.Strings(mrow.Matched)
	sort.Strings(mrow.Unmatched)
	sort.Strings(vrow.Matched)
	sort.Strings(vrow.Unmatched)

	if !authorized {
		mrow.Answer, vrow.Answer = "not reached", "not reached"
		mrow.Details = "refused at authorization"
		return []Row{mrow, vrow}, nil
	}
	// What the API server says: a server-side dry run as the user.
	cfg := rest.CopyConfig(x.cfg)
	if as != nil {
		cfg.Impersonate = *as
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var ri dynamic.ResourceInterface = dyn.Resource(gvr)
	if obj.GetNamespace() != "" {
		ri = dyn.Resource(gvr).Namespace(obj.GetNamespace())
	}
	created, err := ri.Create(ctx, obj.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		var status apierrors.APIStatus
		if !errors.As(err, &status) {
			return nil, fmt.Errorf("dry-run create: %w", err)
		}
		msg := status.Status().Message
		refuser := refusedBy(msg)
		if refuser == "" {
			// Not admission: the object is invalid, exists, or the dry
			// run itself is not allowed.
			mutated(&mrow, patchPaths)
			vrow.Answer, vrow.By, vrow.Details = "not decided", "the API server, not admission ("+string(status.Status().Reason)+")", msg
			return []Row{mrow, vrow}, nil
		}
		if strings.HasPrefix(refuser, "Mutat") {
			mrow.Answer, mrow.By, mrow.Details = "refused", refuser, msg
			vrow.Answer = "not reached"
			return []Row{mrow, vrow}, nil
		}
		mutated(&mrow, patchPaths)
		vrow.Answer, vrow.By, vrow.Details = "refused", refuser, msg
		return []Row{mrow, vrow}, nil
	}
	mutated(&mrow, patchPaths)
	if changes := changed(obj, created); changes != "" {
		mrow.Details += " (the API server's answer: " + changes + ")"
	}
	vrow.Answer, vrow.By = "admitted", by(vrow.Matched, "no Portcullis policy matched")
	return []Row{mrow, vrow}, nil
}

// mutated sets the mutating row from the patch the policies make.
func mutated(r *Row, patch []string) {
	r.Answer, r.By = "unchanged", by(r.Matched, "no Portcullis policy matched")
	if len(patch) > 0 {
		r.Answer, r.Details = "mutated", strings.Join(patch, ", ")
	}
}

// wiring reads the cluster's PolicyExceptions and the objects of the
// parameter kinds, and returns what makes an engine pair that applies
// them, as the operator's engines do.
func (x *explainer) wiring(ctx context.Context, kinds map[schema.GroupVersionKind]bool) (func(admission.Namespaces) (*admission.MutationEngine, *admission.ValidationEngine), error) {
	list := &admissionv1alpha1.PolicyExceptionList{}
	if err := x.list(ctx, admissionv1alpha1.GroupVersion.WithResource("policyexceptions"), list); err != nil {
		return nil, err
	}
	exceptions := map[string]*admission.CompiledException{}
	for i := range list.Items {
		if c, errs := admission.CompileException(&list.Items[i]); len(errs) == 0 {
			exceptions[list.Items[i].Name] = c
		}
	}
	var objs []*unstructured.Unstructured
	for gvk := range kinds {
		if gvk.Empty() {
			continue
		}
		m, err := x.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, fmt.Errorf("parameter kind %s: %w", gvk, err)
		}
		l, err := x.dyn.Resource(m.Resource).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing the parameters %s: %w", m.Resource.Resource, err)
		}
		for i := range l.Items {
			objs = append(objs, &l.Items[i])
		}
	}
	params, err := policytest.NewParamSource(ctx, objs)
	if err != nil {
		return nil, err
	}
	return func(ns admission.Namespaces) (*admission.MutationEngine, *admission.ValidationEngine) {
		pair := admission.NewEngines(ns, params)
		for n, c := range exceptions {
			pair.Exceptions.Set(n, c)
		}
		pair.Exceptions.MarkReady()
		return pair.Mutation, pair.Validation
	}, nil
}

func execution(x *admissionv1alpha1.ExecutionStatus) string {
	if x == nil || x.Mode == "" {
		return ""
	}
	return " [" + strings.ToLower(string(x.Mode)) + "]"
}

func violation(res admission.ValidateResult) string {
	var out []string
	for _, d := range res.Denials {
		out = append(out, "denies: "+d.Message)
	}
	for _, w := range res.Warnings {
		out = append(out, "warns: "+w.Message)
	}
	for _, a := range res.Audits {
		out = append(out, "audits: "+a.Message)
	}
	return strings.Join(out, "; ")
}

// refusedBy names the admission step that refused, from the API server's
// message; "" when it was not admission.
func refusedBy(msg string) string {
	for _, prefix := range []string{"ValidationPolicy ", "MutationPolicy ", "ValidatingAdmissionPolicy ", "MutatingAdmissionPolicy "} {
		if i := strings.Index(msg, prefix); i >= 0 {
			rest := msg[i+len(prefix):]
			name := strings.Fields(rest)
			if len(name) > 0 {
				return strings.TrimSpace(prefix) + " " + strings.Trim(name[0], `"'`)
			}
		}
	}
	switch {
	case strings.Contains(msg, "violates PodSecurity"):
		return "Pod Security Admission"
	case strings.Contains(msg, "admission webhook"):
		return "an admission webhook"
	}
	return ""
}

func by(matched []string, none string) string {
	if len(matched) == 0 {
		return none
	}
	names := make([]string, len(matched))
	for i, m := range matched {
		names[i] = strings.SplitN(m, " ", 2)[0]
	}
	return strings.Join(names, ", ")
}

// changed summarises the labels and annotations the API server's
// admission set (the spec it also defaults, so it is not compared).
func changed(before, after *unstructured.Unstructured) string {
	var out []string
	for k, v := range after.GetLabels() {
		if before.GetLabels()[k] != v {
			out = append(out, fmt.Sprintf("label %s=%s", k, v))
		}
	}
	for k, v := range after.GetAnnotations() {
		if before.GetAnnotations()[k] != v {
			out = append(out, fmt.Sprintf("annotation %s=%s", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func (x *explainer) list(ctx context.Context, gvr schema.GroupVersionResource, into runtime.Object) error {
	l, err := x.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil // the group is off
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", gvr.Resource, err)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(l.UnstructuredContent(), into)
}

func (x *explainer) namespaces(ctx context.Context) (admission.Namespaces, error) {
	l, err := x.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	out := admission.Namespaces{}
	for i := range l.Items {
		out[l.Items[i].Name] = &l.Items[i]
	}
	return out, nil
}

func (x *explainer) namespaceLabels(ctx context.Context) (authz.NamespaceLabels, error) {
	ns, err := x.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	out := authz.NamespaceLabels{}
	for n, o := range ns {
		out[n] = labels.Set(o.Labels)
	}
	return out, nil
}

// Write prints rows as a table, then each phase's policies.
func Write(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tANSWER\tBY\tDETAILS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Phase, r.Answer, orDefault2(r.By, "-"), r.Details)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if len(r.Matched)+len(r.Unmatched) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s policies:\n", r.Phase)
		for _, m := range r.Matched {
			fmt.Fprintf(w, "  matched      %s\n", m)
		}
		for _, m := range r.Unmatched {
			fmt.Fprintf(w, "  not matched  %s\n", m)
		}
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func orDefault(ns string) string { return orDefault2(ns, corev1.NamespaceDefault) }

func orDefault2(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func ptr[T any](v T) *T { return &v }
