package decision

import (
	"errors"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
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
	log      logr.Logger
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
	kv := []any{"phase", e.Phase, "decision", e.Result, "user", e.User}
	if e.Verb != "" {
		kv = append(kv, "verb", e.Verb)
	}
	if e.Resource != "" {
		kv = append(kv, "resource", e.Resource)
	}
	if e.Namespace != "" {
		kv = append(kv, "namespace", e.Namespace)
	}
	if e.Policy != "" {
		kv = append(kv, "policy", e.Policy)
	}
	if e.Reason != "" {
		kv = append(kv, "reason", e.Reason)
	}
	if e.UID != "" {
		kv = append(kv, "uid", e.UID)
	}
	if len(e.DryRun) > 0 {
		would := make([]string, 0, len(e.DryRun))
		for _, d := range e.DryRun {
			r.dryRun.WithLabelValues(e.Phase, d.Policy, d.Would).Inc()
			would = append(would, d.Policy+" would "+d.Would)
		}
		kv = append(kv, "dryRun", would)
	}
	if len(e.Audit) > 0 {
		audit := make([]string, 0, len(e.Audit))
		for _, a := range e.Audit {
			r.audit.WithLabelValues(a.Policy).Inc()
			audit = append(audit, a.Policy+": "+a.Message)
		}
		kv = append(kv, "audit", audit)
	}
	if len(e.PolicyErrors) > 0 {
		errs := make([]string, 0, len(e.PolicyErrors))
		for _, pe := range e.PolicyErrors {
			r.errors.WithLabelValues(e.Phase, pe.Policy, pe.FailurePolicy).Inc()
			errs = append(errs, pe.Policy+" (failurePolicy "+pe.FailurePolicy+"): "+pe.Message)
		}
		kv = append(kv, "policyErrors", errs)
	}
	if len(e.Exemptions) > 0 {
		ex := make([]string, 0, len(e.Exemptions))
		for _, x := range e.Exemptions {
			r.exempt.WithLabelValues(e.Phase, x.Policy, x.Exception).Inc()
			ex = append(ex, x.Policy+" by "+x.Exception)
		}
		kv = append(kv, "exempted", ex)
	}
	kv = append(kv, "latency", e.Latency.String())
	r.log.Info("decision", kv...)
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
