package admission

import (
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

func exception(name string, m admissionv1alpha1.ExceptionMatch, policies ...admissionv1alpha1.PolicyReference) *admissionv1alpha1.PolicyException {
	return &admissionv1alpha1.PolicyException{
		ObjectMeta: objectMeta(name),
		Spec:       admissionv1alpha1.PolicyExceptionSpec{Policies: policies, Match: m, Reason: "tested"},
	}
}

func vpRef(name string) admissionv1alpha1.PolicyReference {
	return admissionv1alpha1.PolicyReference{Kind: KindValidationPolicy, Name: name}
}

// A PolicyException exempts exactly the requests it describes from exactly
// the policies it names, until it expires; other policies and requests
// are untouched.
func TestExceptionsExempt(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	deny := validationPolicy("no-privileged", admissionv1alpha1.ActionDeny, match(), noPrivileged)
	other := validationPolicy("other", admissionv1alpha1.ActionDeny, match(), noPrivileged)
	pod := func(name, ns, user string, groups []string, labels map[string]string) *admissionv1.AdmissionRequest {
		o := podObject(name, labels, "app", "privileged")
		meta(o)["namespace"] = ns
		return request{op: admissionv1.Create, kind: "Pod", resource: "pods", namespace: ns, name: name, object: obj(t, o), username: user, groups: groups}.build()
	}
	web := map[string]string{"app": "web"}
	for _, tc := range []struct {
		name   string
		m      admissionv1alpha1.ExceptionMatch
		expiry *time.Time
		req    *admissionv1.AdmissionRequest
		exempt bool
	}{
		{"everything", admissionv1alpha1.ExceptionMatch{}, nil, pod("p", "caribou", "alice", nil, nil), true},
		{"its namespace", admissionv1alpha1.ExceptionMatch{Namespaces: []string{"caribou"}}, nil, pod("p", "caribou", "alice", nil, nil), true},
		{"another namespace", admissionv1alpha1.ExceptionMatch{Namespaces: []string{"moose"}}, nil, pod("p", "caribou", "alice", nil, nil), false},
		{"its name", admissionv1alpha1.ExceptionMatch{Names: []string{"p"}}, nil, pod("p", "caribou", "alice", nil, nil), true},
		{"another name", admissionv1alpha1.ExceptionMatch{Names: []string{"q"}}, nil, pod("p", "caribou", "alice", nil, nil), false},
		{"its labels", admissionv1alpha1.ExceptionMatch{ObjectSelector: labelSelector("app", "web")}, nil, pod("p", "caribou", "alice", nil, web), true},
		{"other labels", admissionv1alpha1.ExceptionMatch{ObjectSelector: labelSelector("app", "db")}, nil, pod("p", "caribou", "alice", nil, web), false},
		{"its operation", admissionv1alpha1.ExceptionMatch{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}, nil, pod("p", "caribou", "alice", nil, nil), true},
		{"another operation", admissionv1alpha1.ExceptionMatch{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update}}, nil, pod("p", "caribou", "alice", nil, nil), false},
		{"its user", admissionv1alpha1.ExceptionMatch{Users: []string{"alice"}}, nil, pod("p", "caribou", "alice", nil, nil), true},
		{"its group", admissionv1alpha1.ExceptionMatch{Groups: []string{"ops"}}, nil, pod("p", "caribou", "bob", []string{"ops"}, nil), true},
		{"its service account", admissionv1alpha1.ExceptionMatch{ServiceAccounts: []admissionv1alpha1.ServiceAccountReference{{Namespace: "kube-system", Name: "replicaset-controller"}}}, nil,
			pod("p", "caribou", "system:serviceaccount:kube-system:replicaset-controller", nil, nil), true},
		{"another user", admissionv1alpha1.ExceptionMatch{Users: []string{"alice"}, Groups: []string{"ops"}}, nil, pod("p", "caribou", "bob", []string{"dev"}, nil), false},
		{"all of them", admissionv1alpha1.ExceptionMatch{Namespaces: []string{"caribou"}, ObjectSelector: labelSelector("app", "web"), Users: []string{"alice"}}, nil, pod("p", "caribou", "alice", nil, web), true},
		{"all but one of them", admissionv1alpha1.ExceptionMatch{Namespaces: []string{"caribou"}, ObjectSelector: labelSelector("app", "web"), Users: []string{"alice"}}, nil, pod("p", "caribou", "alice", nil, nil), false},
		{"not expired", admissionv1alpha1.ExceptionMatch{}, ptrTime(now.Add(time.Minute)), pod("p", "caribou", "alice", nil, nil), true},
		{"expired", admissionv1alpha1.ExceptionMatch{}, ptrTime(now), pod("p", "caribou", "alice", nil, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := validationEngine(t, testNamespaces, deny, other)
			e.now = func() time.Time { return now }
			x := exception("x", tc.m, vpRef("no-privileged"))
			if tc.expiry != nil {
				x.Spec.ExpiresAt = &metav1.Time{Time: *tc.expiry}
			}
			cx, errs := CompileException(x)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			xr := NewExceptionRegistry(NewMutationEngine(nil), e)
			xr.Set("x", cx)
			xr.MarkReady()
			res := e.Validate(ctx, tc.req)
			exempted := len(res.Exempted) == 1 && res.Exempted[0] == Exemption{Kind: KindValidationPolicy, Policy: "no-privileged", Exception: "x"}
			if exempted != tc.exempt {
				t.Fatalf("Exempted = %v, want exempted %v", res.Exempted, tc.exempt)
			}
			// The policy it does not name still denies.
			denied := map[string]bool{}
			for _, d := range res.Denials {
				denied[d.Policy] = true
			}
			if !denied["other"] || denied["no-privileged"] == tc.exempt {
				t.Errorf("Denials = %v", res.Denials)
			}
		})
	}
}

// An exception exempts mutations too, and before the registry is ready
// nothing is exempted (a request then meets every policy).
func TestExceptionsExemptMutationsAndStartClosed(t *testing.T) {
	me := mutationEngine(t, testNamespaces, mutationPolicy("labels", 0, match(), setLabels(true, "a", "b")))
	ve := validationEngine(t, testNamespaces, validationPolicy("no-privileged", admissionv1alpha1.ActionDeny, match(), noPrivileged))
	xr := NewExceptionRegistry(me, ve)
	cx, errs := CompileException(exception("x", admissionv1alpha1.ExceptionMatch{}, admissionv1alpha1.PolicyReference{Kind: KindMutationPolicy, Name: "labels"}, vpRef("no-privileged")))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	xr.Set("x", cx)
	req := privilegedPod(t)
	if res := ve.Validate(ctx, req); len(res.Exempted) != 0 || len(res.Denials) != 1 {
		t.Fatalf("before MarkReady: %+v", res)
	}
	xr.MarkReady()
	if res := me.Mutate(ctx, req); len(res.Exempted) != 1 || res.Patch != nil {
		t.Fatalf("mutation: exempted %v, patch %v", res.Exempted, res.Patch)
	}
	if res := ve.Validate(ctx, req); len(res.Exempted) != 1 || len(res.Denials) != 0 {
		t.Fatalf("validation: %+v", res)
	}
	xr.Set("x", nil) // not served: unapproved, expired or invalid
	if res := ve.Validate(ctx, req); len(res.Exempted) != 0 || len(res.Denials) != 1 {
		t.Fatalf("after the exception stops serving: %+v", res)
	}
	if s, n := xr.Counts(); s != 0 || n != 1 {
		t.Errorf("counts %d, %d", s, n)
	}
}

func TestExceptionCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		x     *admissionv1alpha1.PolicyException
		field string
	}{
		{"no policies", exception("x", admissionv1alpha1.ExceptionMatch{}), "spec.policies"},
		{"bad kind", exception("x", admissionv1alpha1.ExceptionMatch{}, admissionv1alpha1.PolicyReference{Kind: "AccessPolicy", Name: "a"}), "spec.policies[0].kind"},
		{"duplicate", exception("x", admissionv1alpha1.ExceptionMatch{}, vpRef("a"), vpRef("a")), "spec.policies[1]"},
		{"bad namespace", exception("x", admissionv1alpha1.ExceptionMatch{Namespaces: []string{"Not_A_Namespace"}}, vpRef("a")), "spec.match.namespaces[0]"},
		{"bad selector", exception("x", admissionv1alpha1.ExceptionMatch{ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a b": "c"}}}, vpRef("a")), "spec.match.objectSelector.matchLabels"},
		{"bad operation", exception("x", admissionv1alpha1.ExceptionMatch{Operations: []admissionregistrationv1.OperationType{"PATCH"}}, vpRef("a")), "spec.match.operations[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, errs := CompileException(tc.x); !hasFieldError(errs, tc.field, "") {
				t.Errorf("errors %v, want one at %s", errs, tc.field)
			}
		})
	}
	x := exception("x", admissionv1alpha1.ExceptionMatch{}, vpRef("a"))
	x.Spec.Reason = ""
	if _, errs := CompileException(x); !hasFieldError(errs, "spec.reason", "") {
		t.Errorf("no reason: %v", errs)
	}
	// Writing one needs the right to update each policy it names.
	cx, _ := CompileException(exception("x", admissionv1alpha1.ExceptionMatch{}, vpRef("a"), admissionv1alpha1.PolicyReference{Kind: KindMutationPolicy, Name: "m"}))
	var got []string
	for _, g := range cx.Grants() {
		got = append(got, g.Resource.Verb+" "+g.Resource.Resource+"."+g.Resource.Group+" "+g.Resource.Name)
	}
	if want := "update validationpolicies.admission.portcullis.io a,update mutationpolicies.admission.portcullis.io m"; strings.Join(got, ",") != want {
		t.Errorf("grants %v, want %s", got, want)
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

// NextExpiry is the earliest expiry still ahead among the served
// exceptions: the instant what they exempt changes without a new index.
func TestExceptionsNextExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	e := NewValidationEngine(nil)
	xr := NewExceptionRegistry(NewMutationEngine(nil), e)
	for name, expiry := range map[string]*time.Time{"never": nil, "past": ptrTime(now.Add(-time.Minute)), "soon": ptrTime(now.Add(time.Minute)), "later": ptrTime(now.Add(time.Hour))} {
		x := exception(name, admissionv1alpha1.ExceptionMatch{}, vpRef("p"))
		if expiry != nil {
			x.Spec.ExpiresAt = &metav1.Time{Time: *expiry}
		}
		cx, errs := CompileException(x)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		xr.Set(name, cx)
	}
	xr.MarkReady()
	for _, tc := range []struct {
		at, want time.Time
	}{
		{now, now.Add(time.Minute)},
		{now.Add(time.Minute), now.Add(time.Hour)}, // expired at its expiresAt, as exempts has it
		{now.Add(time.Hour), time.Time{}},
	} {
		if got := e.NextExpiry(tc.at); !got.Equal(tc.want) {
			t.Errorf("NextExpiry(%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
}
