package admission

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// typedFunc is a controller-runtime admission.Handler from a function.
type typedFunc func(context.Context, cradmission.Request) cradmission.Response

func (f typedFunc) Handle(ctx context.Context, r cradmission.Request) cradmission.Response {
	return f(ctx, r)
}

// A typed handler is served by the stack /mutate and /validate use: it
// sees the request that was sent, and its answer is completed as
// controller-runtime completes it (patches encoded, the UID set, a status
// code); rejections it answers stay answers.
func TestHandlerAnswers(t *testing.T) {
	var seen cradmission.Request
	for name, c := range map[string]struct {
		resp             cradmission.Response
		allowed          bool
		code             int32
		patch, msg, warn string
	}{
		"allowed": {resp: cradmission.Allowed(""), allowed: true, code: http.StatusOK},
		"patched": {resp: cradmission.Patched("", jsonpatch.NewOperation("add", "/metadata/labels", map[string]string{"a": "b"})),
			allowed: true, code: http.StatusOK, patch: `[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]`},
		"denied":  {resp: cradmission.Denied("not this one"), code: http.StatusForbidden, msg: "not this one"},
		"errored": {resp: cradmission.Errored(http.StatusBadRequest, errors.New("spec.x: Invalid value")), code: http.StatusBadRequest, msg: "spec.x: Invalid value"},
		"warned":  {resp: cradmission.Allowed("").WithWarnings("careful"), allowed: true, code: http.StatusOK, warn: "careful"},
	} {
		t.Run(name, func(t *testing.T) {
			h := Handler(typedFunc(func(_ context.Context, r cradmission.Request) cradmission.Response {
				seen = r
				return c.resp
			}))
			rec := post(t, h, review("CREATE", pod))
			a := answer(t, rec)
			if seen.UID != "u-1" || seen.Operation != "CREATE" || seen.UserInfo.Username != "bob" || !strings.Contains(string(seen.Object.Raw), `"privileged":true`) {
				t.Errorf("the handler saw %+v", seen.AdmissionRequest)
			}
			if a.UID != "u-1" || a.Allowed != c.allowed || a.Result == nil || a.Result.Code != c.code || !strings.Contains(a.Result.Message, c.msg) {
				t.Errorf("answer %+v, result %+v; want allowed %v, code %d, message %q", a, a.Result, c.allowed, c.code, c.msg)
			}
			if string(a.Patch) != c.patch || (c.patch != "") != (a.PatchType != nil) {
				t.Errorf("patch %s (type %v), want %s", a.Patch, a.PatchType, c.patch)
			}
			if c.warn != "" && (len(a.Warnings) != 1 || a.Warnings[0] != c.warn) {
				t.Errorf("warnings %q, want %q", a.Warnings, c.warn)
			}
		})
	}
}

// What the stack refuses never reaches the handler, and a handler that
// panics fails the call, so that the failurePolicy decides.
func TestHandlerFailsClosed(t *testing.T) {
	called := false
	h := Handler(typedFunc(func(context.Context, cradmission.Request) cradmission.Response {
		called = true
		panic("boom")
	}))
	if rec := post(t, h, `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE"}}`); rec.Code != http.StatusBadRequest || called {
		t.Errorf("a v1beta1 review: %d %s, handler called %v", rec.Code, rec.Body, called)
	}
	if rec := post(t, h, review("CREATE", pod)); rec.Code != http.StatusInternalServerError || !called || strings.Contains(rec.Body.String(), `"allowed"`) {
		t.Errorf("a panic: %d %s", rec.Code, rec.Body)
	}
}
