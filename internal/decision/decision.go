package decision

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Phases, in the order the API server calls them.
const (
	PhaseAuthenticate = "authenticate"
	PhaseAuthorize    = "authorize"
	PhaseMutate       = "mutate"
	PhaseValidate     = "validate"
)

// latencyBuckets start at 50µs: decisions are budgeted in tens of
// microseconds, so the default Prometheus buckets (from 5ms) would put
// every observation in the first bucket.
var latencyBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}

// Entry is one decision.
type Entry struct {
	Phase string
	// Result is phase-specific: authenticated/unauthenticated,
	// allow/deny/no-opinion, patched/allowed/denied, error.
	Result string
	// User the request is for, when known. Never a credential.
	User string
	// Verb, Resource and Namespace describe the request when the phase knows them.
	Verb      string
	Resource  string
	Namespace string
	// Policy names the object that decided, as Kind/name.
	Policy string
	// Reason is a human explanation for the operator's log.
	Reason string
	// UID of the review, where the review has one.
	UID     string
	Latency time.Duration
	// DryRun lists what DryRun policies would have done; they change no
	// answer but are logged and counted.
	DryRun []DryRun
	// Audit lists the violations of Audit policies: the request went
	// through, and each is logged and counted.
	Audit []Violation
	// PolicyErrors lists the policies that could not be evaluated or
	// applied, each handled by its failure policy: logged and counted.
	PolicyErrors []PolicyError
	// Exemptions lists the policies a PolicyException exempted the request
	// from: logged and counted with the exception's name.
	Exemptions []Exemption
}

// Redact replaces what policies wrote into e (the reason, the audit
// violations' and the policy errors' messages, which message expressions
// and CEL errors may fill with the object's data) with what names them
// only: for a review of an object whose data no log may hold, a Secret.
// What decided and how stays: result, policies, failure policies.
func (e *Entry) Redact() {
	if e.Reason != "" {
		e.Reason = "redacted: the object's data may not be logged"
		if e.Policy != "" {
			e.Reason = "by " + e.Policy + " (message redacted: the object's data may not be logged)"
		}
	}
	for i := range e.Audit {
		e.Audit[i].Message = "violates " + e.Audit[i].Policy
	}
	for i := range e.PolicyErrors {
		e.PolicyErrors[i].Message = "could not be evaluated or applied (message redacted)"
	}
}

// Exemption is one policy a request was exempted from.
type Exemption struct {
	// Policy and Exception as Kind/name.
	Policy, Exception string
}

// PolicyError is one policy that could not be evaluated or applied.
type PolicyError struct {
	// Policy as Kind/name.
	Policy string
	// FailurePolicy is Fail or Ignore: what was done about it.
	FailurePolicy string
	Message       string
}

// Violation is one failed validation of an Audit policy.
type Violation struct {
	// Policy as Kind/name.
	Policy  string
	Message string
}

// DryRun is one DryRun policy's would-be answer.
type DryRun struct {
	// Policy as Kind/name.
	Policy string
	// Would is "allow", "deny", ...
	Would string
}

// Recorder logs and counts decisions.
type Recorder struct {
	log logr.Logger
	// zap is log's zap logger when log is zapr's at its own level.
	zap      *zap.Logger
	total    *prometheus.CounterVec
	dryRun   *prometheus.CounterVec
	audit    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	exempt   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewRecorder returns a Recorder whose metrics are registered with reg.
func NewRecorder(log logr.Logger, reg prometheus.Registerer) (*Recorder, error) {
	r := &Recorder{
		log: log,
		zap: underlyingZap(log),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_decisions_total",
			Help: "Webhook decisions by phase and result.",
		}, []string{"phase", "result"}),
		dryRun: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_dryrun_decisions_total",
			Help: "What DryRun policies would have decided, by phase, policy and would-be result.",
		}, []string{"phase", "policy", "would"}),
		audit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_audit_violations_total",
			Help: "Failed validations of Audit policies (the requests were admitted), by policy.",
		}, []string{"policy"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_policy_errors_total",
			Help: "Policies that could not be evaluated or applied to a request, by phase, policy and failure policy (Fail: the error decided; Ignore: the policy was skipped).",
		}, []string{"phase", "policy", "failure_policy"}),
		exempt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_policy_exemptions_total",
			Help: "Requests a PolicyException exempted from a policy that matched them, by phase, policy and exception.",
		}, []string{"phase", "policy", "exception"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_decision_duration_seconds",
			Help:    "Time to decide a review, from decoded request to encoded answer, by phase.",
			Buckets: latencyBuckets,
		}, []string{"phase"}),
	}
	if reg != nil {
		var err error
		if r.total, err = register(reg, r.total); err != nil {
			return nil, err
		}
		if r.dryRun, err = register(reg, r.dryRun); err != nil {
			return nil, err
		}
		if r.audit, err = register(reg, r.audit); err != nil {
			return nil, err
		}
		if r.errors, err = register(reg, r.errors); err != nil {
			return nil, err
		}
		if r.exempt, err = register(reg, r.exempt); err != nil {
			return nil, err
		}
		if r.duration, err = register(reg, r.duration); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Record logs the entry and updates the metrics.
func (r *Recorder) Record(e Entry) {
	if r == nil {
		return
	}
	r.total.WithLabelValues(e.Phase, e.Result).Inc()
	r.duration.WithLabelValues(e.Phase).Observe(e.Latency.Seconds())
	// The fields escape to the log's core: a pooled slice, not one per
	// decision.
	fp := fieldPool.Get().(*[]zap.Field)
	fields := append((*fp)[:0], zap.String("phase", e.Phase), zap.String("decision", e.Result), zap.String("user", e.User))
	str := func(key, v string) {
		if v != "" {
			fields = append(fields, zap.String(key, v))
		}
	}
	str("verb", e.Verb)
	str("resource", e.Resource)
	str("namespace", e.Namespace)
	str("policy", e.Policy)
	str("reason", e.Reason)
	str("uid", e.UID)
	if len(e.DryRun) > 0 {
		would := make([]string, 0, len(e.DryRun))
		for _, d := range e.DryRun {
			r.dryRun.WithLabelValues(e.Phase, d.Policy, d.Would).Inc()
			would = append(would, d.Policy+" would "+d.Would)
		}
		fields = append(fields, zap.Strings("dryRun", would))
	}
	if len(e.Audit) > 0 {
		audit := make([]string, 0, len(e.Audit))
		for _, a := range e.Audit {
			r.audit.WithLabelValues(a.Policy).Inc()
			audit = append(audit, a.Policy+": "+a.Message)
		}
		fields = append(fields, zap.Strings("audit", audit))
	}
	if len(e.PolicyErrors) > 0 {
		errs := make([]string, 0, len(e.PolicyErrors))
		for _, pe := range e.PolicyErrors {
			r.errors.WithLabelValues(e.Phase, pe.Policy, pe.FailurePolicy).Inc()
			errs = append(errs, pe.Policy+" (failurePolicy "+pe.FailurePolicy+"): "+pe.Message)
		}
		fields = append(fields, zap.Strings("policyErrors", errs))
	}
	if len(e.Exemptions) > 0 {
		ex := make([]string, 0, len(e.Exemptions))
		for _, x := range e.Exemptions {
			r.exempt.WithLabelValues(e.Phase, x.Policy, x.Exception).Inc()
			ex = append(ex, x.Policy+" by "+x.Exception)
		}
		fields = append(fields, zap.Strings("exempted", ex))
	}
	fields = append(fields, zap.Stringer("latency", e.Latency))
	r.write(fields)
	clear(fields)
	*fp = fields[:0]
	fieldPool.Put(fp)
}

var fieldPool = sync.Pool{New: func() any { s := make([]zap.Field, 0, 16); return &s }}

// write logs one decision line with fields: straight to zap when the
// decision log is zapr's (the operator's), which writes the same line
// without boxing every value for logr's key-value list; through logr
// otherwise.
func (r *Recorder) write(fields []zap.Field) {
	if r.zap != nil {
		if ce := r.zap.Check(zap.InfoLevel, decisionMessage); ce != nil {
			ce.Write(fields...)
		}
		return
	}
	if !r.log.Enabled() {
		return
	}
	kv := make([]any, 0, 2*len(fields))
	for _, f := range fields {
		switch f.Type {
		case zapcore.StringType:
			kv = append(kv, f.Key, f.String)
		case zapcore.StringerType:
			kv = append(kv, f.Key, f.Interface.(fmt.Stringer).String())
		default: // zap.Strings
			kv = append(kv, f.Key, f.Interface)
		}
	}
	r.log.Info(decisionMessage, kv...)
}

// decisionMessage is the message of every decision line.
const decisionMessage = "decision"

// underlyingZap is the zap logger beneath a zapr logr.Logger that logs at
// its sink's own level (V(0)); nil for any other.
func underlyingZap(log logr.Logger) *zap.Logger {
	u, ok := log.GetSink().(zapr.Underlier)
	if !ok || log.GetV() != 0 {
		return nil
	}
	return u.GetUnderlying()
}

// register registers c, or returns the collector already registered under
// its name, so that several operators in one process (as in the tests)
// share one set of metrics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
