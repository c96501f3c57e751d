package reviewhttp

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authenticationv1beta1 "k8s.io/api/authentication/v1beta1"
	authorizationv1 "k8s.io/api/authorization/v1"
	authorizationv1beta1 "k8s.io/api/authorization/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// reviewKinds are the types the handlers decode reviews into.
var reviewKinds = []func() any{
	func() any { return new(admissionv1.AdmissionReview) },
	func() any { return new(authenticationv1.TokenReview) },
	func() any { return new(authenticationv1beta1.TokenReview) },
	func() any { return new(authorizationv1.SubjectAccessReview) },
	func() any { return new(authorizationv1beta1.SubjectAccessReview) },
}

// unmarshal decodes every review as encoding/json does: the same fields
// (names matched as encoding/json matches them, the last of duplicates),
// the same values, the same inputs refused, sharing none of the body. A
// review the two read apart would be decided on other fields than the
// ones the API server sent.
func FuzzUnmarshalIsEncodingJSONs(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, kind := range reviewKinds {
			got, want := kind(), kind()
			// What unmarshal decodes does not share the body, whose
			// buffer the next review is read into (Body.Release): the
			// body it read is overwritten before the two are compared.
			scratch := bytes.Clone(body)
			errGot, errWant := unmarshal(scratch, got), json.Unmarshal(body, want)
			for i := range scratch {
				scratch[i] = '#'
			}
			if (errGot == nil) != (errWant == nil) {
				t.Fatalf("%T of %q: unmarshal error %v, encoding/json error %v", got, body, errGot, errWant)
			}
			if errGot == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%T of %q:\nunmarshal     %+v\nencoding/json %+v", got, body, got, want)
			}
		}
	})
}

// addSeeds adds the codec fuzz tests' seeds: reviews of every kind, and
// inputs at the edges of JSON.
func addSeeds(f *testing.F) {
	for _, s := range []string{
		`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"7b9a","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},"subResource":"status","requestKind":{"group":"","version":"v1","kind":"ConfigMap"},"name":"a","namespace":"b","operation":"CREATE","userInfo":{"username":"bob","uid":"1","groups":["g","system:authenticated"],"extra":{"k":["v"]}},"object":{"kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"\u00e9"}},"data":{"k":"v"}},"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions"}}}`,
		`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"x","operation":"DELETE","oldObject":{"a":[1,2.5e3,true,null,"s"]},"object":null}}`,
		`{"kind":"AdmissionReview","request":{"uid":"a","UID":"b","object":{"a":1},"Object":{"b":2},"userInfo":{"groups":null,"extra":{}}}}`,
		`{"kind":"AdmissionReview","request":{"uid":"a","dryRun":true},"request":{"operation":"UPDATE"}}`,
		`{"kind":"AdmissionReview","request":{"uid":"a\ud800","name":"\u0041\"\\\/\b\f\n\r\t"}}`,
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","metadata":{"creationTimestamp":null},"spec":{"token":"abc","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}`,
		`{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"abc","Token":"def"}}`,
		`{"kind":"TokenReview","metadata":{"creationTimestamp":"2026-12-03T10:00:00Z","labels":{"a":"b"}},"spec":{"token":null}}`,
		`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","spec":{"resourceAttributes":{"namespace":"caribou","verb":"create","version":"v1","resource":"configmaps","fieldSelector":{"requirements":[{"key":"a","operator":"In","values":["b"]}]}},"user":"bob","groups":["developers"],"extra":{"e":["1","2"]},"uid":"1001"}}`,
		`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1beta1","spec":{"nonResourceAttributes":{"path":"/healthz","verb":"get"},"user":"bob","group":["g"]}}`,
		`{"spec":{"user":1}}`, `{"spec":{"groups":"g"}}`, `{"request":{"object":1e400}}`, `{"kind":"x",}`,
		`null`, `[]`, `{`, `"str"`, `{} {}`, ` {"kind":"TokenReview"} `, "{\"kind\":\"\xff\"}",
		// Names folded as encoding/json folds them (the Kelvin sign, the
		// long s), escapes and surrogates, values of the wrong type, bad
		// numbers, base64 of a patch, a byte order mark.
		`{"KIND":"AdmissionReview","APIVERSION":"v"}`, "{\"\u212aind\":\"AdmissionReview\"}", "{\"request\":{\"u\u017ferInfo\":{\"username\":\"x\"}}}",
		`{"request":{"uid":"\ud83d\ude00\u0000"}}`, `{"request":{"uid":"\ud83d"}}`, `{"request":{"dryRun":"true"}}`,
		`{"request":{"dryRun":null,"object":null,"name":null}}`, `{"request":{"object": { "a" : [ 1 , 2 ] } }}`,
		`{"request":{"userInfo":{"extra":{"a":null,"b":["x",null]}}}}`, `{"request":{"userInfo":{"groups":["a",1]}}}`,
		`{"request":{"uid":"a"},"request":null}`, `{"request":{"uid":"a","uid":"b","Uid":"c"}}`, `{"request":{"object":{"a":1,}}}`,
		`{"request":{"object":01}}`, `{"request":{"object":-}}`, `{"request":{"object":"\x"}}`, "{\"request\":{\"object\":\"\t\"}}",
		`{"request":{"object":1E+2,"oldObject":-0.0e-0}}`, "\ufeff{}", `{"response":{"allowed":true,"patch":"AAE="}}`, `{"response":{"patch":"A"}}`,
		`{"metadata":{"creationTimestamp":"bad"}}`, `{"metadata":{"deletionGracePeriodSeconds":1.5}}`,
		"a\xffb\u2028<>&\x00", "\xed\xa0\x80\xe2\x82",
	} {
		f.Add([]byte(s))
	}
}

// marshal writes every answer as encoding/json writes it, byte for byte:
// each review encoding/json reads from the input, and an AdmissionReview
// answer whose strings, keys and patch are the input as it is (invalid
// UTF-8, control characters, HTML).
func FuzzMarshalIsEncodingJSONs(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		s := string(body)
		values := []any{&admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: s, Kind: "AdmissionReview"},
			Response: &admissionv1.AdmissionResponse{UID: types.UID(s), Allowed: len(s)%2 == 0, Patch: body, PatchType: ptr.To(admissionv1.PatchType(s)),
				Result: &metav1.Status{Status: metav1.StatusFailure, Code: int32(len(s)), Reason: metav1.StatusReason(s), Message: s,
					Details: &metav1.StatusDetails{Name: s, Causes: []metav1.StatusCause{{Type: metav1.CauseType(s), Message: s, Field: s}}}},
				Warnings: []string{s, ""}, AuditAnnotations: map[string]string{s: s, "a": "b"}}}}
		for _, kind := range reviewKinds {
			if v := kind(); json.Unmarshal(body, v) == nil {
				values = append(values, v)
			}
		}
		for _, v := range values {
			got, errGot := marshal(v)
			want, errWant := json.Marshal(v)
			if (errGot == nil) != (errWant == nil) || string(got) != string(want) {
				t.Fatalf("%T of %q:\nmarshal       %s (%v)\nencoding/json %s (%v)", v, body, got, errGot, want, errWant)
			}
		}
	})
}

// Nesting is refused where encoding/json refuses it, one level past
// maxNestingDepth, wherever it is (the raw object, a field the review
// types read), and brackets in strings do not count. The fuzz test cannot
// reach these: its inputs are short.
func TestUnmarshalRefusesNestingAsEncodingJSON(t *testing.T) {
	nest := func(depth int, open, inner, close string) string {
		return strings.Repeat(open, depth) + inner + strings.Repeat(close, depth)
	}
	// Each body nests depth+2 levels in all, counting the objects of the
	// review around the nesting: at the limit, one past it, far past it.
	for _, depth := range []int{maxNestingDepth - 2, maxNestingDepth - 1, 3 * maxNestingDepth} {
		for _, body := range []string{
			`{"request":{"object":` + nest(depth, "[", "", "]") + `}}`,
			`{"request":{"object":` + nest(depth, `{"a":`, "1", "}") + `}}`,
			`{"request":{"userInfo":{"extra":{"a":` + nest(depth-2, "[", "", "]") + `}}}}`,
			`{"spec":{"extra":{"a":` + nest(depth-1, "[", "", "]") + `}}}`,
			`{"request":{"name":"` + strings.Repeat(`[{\"`, depth) + `","object":[]}}`,
		} {
			for _, kind := range reviewKinds {
				got, want := kind(), kind()
				errGot, errWant := unmarshal([]byte(body), got), json.Unmarshal([]byte(body), want)
				if (errGot == nil) != (errWant == nil) {
					t.Fatalf("%T nested %d deep: unmarshal error %v, encoding/json error %v", got, depth, errGot, errWant)
				}
				if errGot == nil && !reflect.DeepEqual(got, want) {
					t.Fatalf("%T nested %d deep: unmarshal and encoding/json read it apart", got, depth)
				}
			}
		}
	}
	// Both answers occur above: a body at the limit is read, one past it is not.
	var r admissionv1.AdmissionReview
	if err := unmarshal([]byte(`{"request":{"object":`+nest(maxNestingDepth-2, "[", "", "]")+`}}`), &r); err != nil {
		t.Fatalf("nested at the limit: %v", err)
	}
	if err := unmarshal([]byte(`{"request":{"object":`+nest(maxNestingDepth-1, "[", "", "]")+`}}`), &r); err == nil {
		t.Fatal("nested one past the limit: read, want refused")
	}
}
