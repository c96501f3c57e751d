package reviewhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	segmentjson "github.com/segmentio/encoding/json"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Deadlines for one review, against clients that send or read slowly.
// The API server gives a webhook at most 30s (its largest timeout for any
// phase), and a review of at most a few MiB crosses a cluster network in
// milliseconds: a caller still sending its body after BodyReadTimeout, or
// still reading the answer after AnswerWriteTimeout, is not the API server
// at work, and holds a connection and a goroutine for nothing. Headers are
// bounded by the server itself (controller-runtime's ReadHeaderTimeout,
// 32s) and idle keep-alive connections by its IdleTimeout (90s, the API
// server's transport keep-alive).
const (
	BodyReadTimeout    = 10 * time.Second
	AnswerWriteTimeout = 10 * time.Second
)

// preallocateBytes bounds the buffer allocated for a body before it
// arrives: reviews are a few KiB; larger ones grow as they are read.
const preallocateBytes = 64 << 10

// ErrTooLarge is, for errors.Is, the error of a body over its cap.
var ErrTooLarge = errors.New("request body too large")

// tooLarge is the error of a body over max bytes.
type tooLarge struct{ max int }

func (e tooLarge) Error() string        { return fmt.Sprintf("request body is larger than %d bytes", e.max) }
func (e tooLarge) Is(target error) bool { return target == ErrTooLarge }

// readTimeout and writeTimeout are the deadlines in use; tests shorten
// them.
var readTimeout, writeTimeout = BodyReadTimeout, AnswerWriteTimeout

// Body is a review's body, read into a buffer that is reused for later
// reviews once released: a review is a few KiB, read on every call.
type Body struct{ b []byte }

// bodies are released Bodies, their buffers kept up to maxPooledBody.
var bodies = sync.Pool{New: func() any { return new(Body) }}

// maxPooledBody is the largest buffer kept for reuse: larger ones, read
// for the rare large review, are left to the collector.
const maxPooledBody = 64 << 10

// Bytes is the body. It is valid until Release; what is decoded from it
// does not share it (FuzzUnmarshalIsEncodingJSONs).
func (b *Body) Bytes() []byte {
	if b == nil {
		return nil
	}
	return b.b
}

// Release gives the body's buffer back for a later review; call it once
// nothing refers to Bytes. A nil Body is released as a no-op.
func (b *Body) Release() {
	if b == nil {
		return
	}
	if cap(b.b) > maxPooledBody {
		b.b = nil
	}
	b.b = b.b[:0]
	bodies.Put(b)
}

// ReadBody checks the method and content type of a review request and
// reads its body, at most max bytes, within BodyReadTimeout; the answer
// must be written within AnswerWriteTimeout after that. The status says whose
// fault an error is: 405, 415 or 400; a body over max is ErrTooLarge, with
// its first max+1 bytes. Release the body when done with it.
func ReadBody(rw http.ResponseWriter, r *http.Request, max int, kind string) (*Body, int, error) {
	// Deadlines are best effort: a ResponseWriter that cannot set them (a
	// test recorder) leaves the server's own.
	rc := http.NewResponseController(rw)
	now := time.Now()
	_ = rc.SetReadDeadline(now.Add(readTimeout))
	_ = rc.SetWriteDeadline(now.Add(readTimeout + writeTimeout))
	if r.Method != http.MethodPost {
		return nil, http.StatusMethodNotAllowed, fmt.Errorf("method %s is not allowed: POST a %s", r.Method, kind)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q is not supported: send application/json", ct)
		}
	}
	if r.Body == nil {
		return nil, http.StatusBadRequest, fmt.Errorf("request body is empty: POST a %s", kind)
	}
	// Read one byte past the cap to tell a body at the cap from one over
	// it. The API server sends the length: the buffer grows to it, up to
	// preallocateBytes, so that a caller who announces a large body and
	// sends nothing holds no more than that.
	body := bodies.Get().(*Body)
	buf := bytes.NewBuffer(body.b[:0])
	if n := r.ContentLength; n > 0 {
		buf.Grow(int(min(n+bytes.MinRead, int64(max)+1, preallocateBytes))) // ReadFrom wants MinRead free to see EOF
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, int64(max)+1))
	body.b = buf.Bytes()
	if err != nil {
		body.Release()
		return nil, http.StatusBadRequest, fmt.Errorf("reading request body: %v", err)
	}
	if len(body.b) > max {
		return body, http.StatusBadRequest, tooLarge{max} // its head, for a caller that answers it
	}
	return body, http.StatusOK, nil
}

// Decode parses a review of kind in one pass into v, whose TypeMeta (the
// inline apiVersion and kind) is tm, and checks the kind; the caller
// checks the version it supports, decoding again only for another one.
func Decode(body []byte, kind string, v any, tm *metav1.TypeMeta) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("request body is empty: POST a %s", kind)
	}
	if err := unmarshal(body, v); err != nil {
		if !json.Valid(body) || !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
			return fmt.Errorf("request body is not a JSON object: %v", err)
		}
		if tm.Kind != "" && tm.Kind != kind {
			return fmt.Errorf("kind %q is not supported: send a %s", tm.Kind, kind)
		}
		return fmt.Errorf("decoding %s: %v", kind, err)
	}
	if tm.Kind != kind {
		return fmt.Errorf("kind %q is not supported: send a %s", tm.Kind, kind)
	}
	return nil
}

// unmarshal decodes body into v as encoding/json does (field names
// matched as it matches them, the last of duplicates, invalid UTF-8
// written as U+FFFD, Unmarshaler methods, the same inputs refused), with
// segmentio/encoding's drop-in encoding/json, which compiles a decoder per
// type and checks the syntax as it decodes: twice as fast on a review as
// encoding/json v1 on top of v2, four times encoding/json itself, and the
// largest share of what a review handler costs beyond reading the body
// (FuzzUnmarshalIsEncodingJSONs holds it to encoding/json's answer).
// It has no limit of nesting, which encoding/json has: deeper reviews are
// refused here as encoding/json refuses them, so that no engine downstream
// walks what the reference decoder would not have let in.
func unmarshal(body []byte, v any) error {
	if err := segmentjson.Unmarshal(body, v); err != nil {
		return err
	}
	if !nestedWithin(body, maxNestingDepth) {
		return fmt.Errorf("exceeded max depth: JSON nested more than %d deep", maxNestingDepth)
	}
	return nil
}

// marshal is encoding/json's Marshal (v1 itself: faster than v2 for an
// answer of a few fields), and for an AdmissionReview, the answer to the
// call with the most to do, segmentio/encoding's drop-in, which compiles
// an encoder per type and writes what encoding/json writes in half its
// time. It ignores omitzero, which no AdmissionReview field has
// (ObjectMeta's creationTimestamp, of the other reviews, does):
// FuzzMarshalIsEncodingJSONs holds it to encoding/json's bytes.
func marshal(v any) ([]byte, error) {
	if _, ok := v.(*admissionv1.AdmissionReview); ok {
		return segmentjson.Marshal(v)
	}
	return json.Marshal(v)
}

// maxNestingDepth is encoding/json's limit of nested arrays and objects.
const maxNestingDepth = 10000

// nestedWithin reports whether the arrays and objects of the valid JSON
// body nest at most max deep. A body with no more than max opening
// brackets in all cannot nest deeper, and is not walked.
func nestedWithin(body []byte, max int) bool {
	if bytes.Count(body, []byte{'['})+bytes.Count(body, []byte{'{'}) <= max {
		return true
	}
	depth, inString := 0, false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case inString && c == '\\':
			i++ // the escaped byte cannot end the string
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			if depth++; depth > max {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return true
}

// Recover turns a panic while reviewing into a logged 500; use it deferred.
func Recover(rw http.ResponseWriter, log logr.Logger, what string) {
	if p := recover(); p != nil {
		log.Error(fmt.Errorf("panic: %v", p), "recovered from a panic", "while", what)
		http.Error(rw, "internal error while "+what, http.StatusInternalServerError)
	}
}

// WriteJSON encodes v whole, then writes it, so a failure never leaves half
// an answer.
func WriteJSON(rw http.ResponseWriter, v any) error {
	b, err := marshal(v)
	if err != nil {
		http.Error(rw, "encoding the answer failed", http.StatusInternalServerError)
		return err
	}
	rw.Header().Set("Content-Type", "application/json")
	_, err = rw.Write(b)
	return err
}
