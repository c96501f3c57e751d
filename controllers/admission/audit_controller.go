package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	reportsv1alpha2 "github.com/portcullis-io/portcullis/api/wgpolicyk8s/v1alpha2"
	engine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/audit"
)

// +kubebuilder:rbac:groups=wgpolicyk8s.io,resources=policyreports;clusterpolicyreports,verbs=get;list;create;update;delete
// The objects audited: the common kinds, read cluster-wide. Never
// Secrets, which the operator reads only in its own namespace.
// +kubebuilder:rbac:groups="",resources=pods;services;configmaps;serviceaccounts;persistentvolumeclaims;namespaces;nodes,verbs=list
// +kubebuilder:rbac:groups=apps,resources=deployments;daemonsets;statefulsets;replicasets,verbs=list
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=list
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;networkpolicies,verbs=list
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings;clusterroles;clusterrolebindings,verbs=list

// auditable are the resources the operator may list (the markers above):
// what a rule with "*" audits.
var auditable = []schema.GroupResource{
	{Resource: "pods"}, {Resource: "services"}, {Resource: "configmaps"}, {Resource: "serviceaccounts"},
	{Resource: "persistentvolumeclaims"}, {Resource: "namespaces"}, {Resource: "nodes"},
	{Group: "apps", Resource: "deployments"}, {Group: "apps", Resource: "daemonsets"},
	{Group: "apps", Resource: "statefulsets"}, {Group: "apps", Resource: "replicasets"},
	{Group: "batch", Resource: "jobs"}, {Group: "batch", Resource: "cronjobs"},
	{Group: "networking.k8s.io", Resource: "ingresses"}, {Group: "networking.k8s.io", Resource: "networkpolicies"},
	{Group: "rbac.authorization.k8s.io", Resource: "roles"}, {Group: "rbac.authorization.k8s.io", Resource: "rolebindings"},
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}, {Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
}

// expand is what a rule's group and resource name: themselves, or with
// "*" the auditable resources they match.
func expand(group, resource string) []schema.GroupResource {
	if group != "*" && resource != "*" {
		return []schema.GroupResource{{Group: group, Resource: resource}}
	}
	var out []schema.GroupResource
	for _, gr := range auditable {
		if (group == "*" || group == gr.Group) && (resource == "*" || resource == gr.Resource) {
			out = append(out, gr)
		}
	}
	return out
}

// AuditSettings is what the background audit reads at every run.
type AuditSettings struct {
	Disabled   bool
	Interval   time.Duration
	MaxResults int
	// Excluded are the namespaces admission never sees.
	Excluded []string
}

// AuditDeps is what the background audit needs.
type AuditDeps struct {
	Settings   func(ctx context.Context) (AuditSettings, error)
	Namespaces engine.NamespaceLister
	Params     engine.ParamSource
	Dynamic    dynamic.Interface
	Mapper     apimeta.RESTMapper
	// Ready is true once every policy has been loaded.
	Ready func() bool
	// Exceptions is the webhook's engine, whose PolicyExceptions the audit
	// applies.
	Exceptions *engine.ValidationEngine
	// ParamChanges counts the changes of parameter objects.
	ParamChanges func() uint64
	// Metrics registers the audit's metrics; nil leaves them out.
	Metrics prometheus.Registerer
}

// auditViolations is portcullis_background_audit_violations: the objects
// that violate each ValidationPolicy at the last audit, registered in reg
// (or the one already there: replicas in one process share it).
func auditViolations(reg prometheus.Registerer) (*prometheus.GaugeVec, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portcullis_background_audit_violations",
		Help: "Existing objects that violate the ValidationPolicy, as of the last background audit.",
	}, []string{"policy"})
	if reg == nil {
		return g, nil
	}
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.GaugeVec)
		if !ok {
			return nil, err
		}
		g = existing
	}
	return g, nil
}

// Audit report names and labels.
const (
	ReportName    = "portcullis-audit"
	ReportSource  = "portcullis"
	managedBy     = "app.kubernetes.io/managed-by"
	omittedAnnot  = "audit.portcullis.io/omitted-results"
	auditPageSize = 500
	// auditSettle is how long the audit waits after a policy change for
	// more changes, so that applying many policies audits once;
	// auditMaxSettle bounds the wait when changes keep coming.
	auditSettle    = 2 * time.Second
	auditMaxSettle = 30 * time.Second
	// auditMinGap separates audits that changes trigger: a parameter kind
	// such as ConfigMap changes often across a cluster.
	auditMinGap = 15 * time.Second
	// auditRetry is how soon a failed audit is tried again.
	auditRetry = time.Minute
)

// auditor runs the background audit on the leader: after policy changes
// and on the interval, never on the request path (its own engine, its own
// lists in pages).
type auditor struct {
	client      client.Client
	validations *engine.ValidationRegistry
	deps        AuditDeps
	now         func() time.Time
	violations  *prometheus.GaugeVec
}

// Start implements manager.Runnable; it runs on the leader only.
//
// An audit is due on the interval, and after a change of the policies,
// their parameters or the exceptions once changes have settled
// (auditSettle without one), or at the latest auditMaxSettle after the
// first; change-triggered audits are at least auditMinGap apart. A failed
// audit is retried after auditRetry.
func (a *auditor) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("audit")
	var last, lastTry, changedAt, seenAt time.Time
	var seen string
	tick := time.NewTicker(auditSettle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if !a.deps.Ready() {
			continue // before every policy is loaded, an audit would drop reports
		}
		now := a.now()
		if fp := a.fingerprint(); fp != seen {
			if changedAt.IsZero() {
				changedAt = now
			}
			seen, seenAt = fp, now
		}
		s, err := a.deps.Settings(ctx)
		if err != nil {
			log.Error(err, "reading the audit settings")
			continue
		}
		if s.Disabled {
			continue
		}
		changed := !changedAt.IsZero() && (now.Sub(seenAt) >= auditSettle || now.Sub(changedAt) >= auditMaxSettle) &&
			now.Sub(last) >= auditMinGap
		due := last.IsZero() || now.Sub(last) >= s.Interval || changed
		if !due || (!lastTry.IsZero() && lastTry.After(last) && now.Sub(lastTry) < auditRetry) {
			continue
		}
		lastTry = now
		n, err := a.run(ctx, s)
		if err != nil {
			log.Error(err, "audit failed; retrying", "in", auditRetry.String())
			continue
		}
		last, changedAt = a.now(), time.Time{}
		log.Info("audit done", "objects", n, "took", last.Sub(now).String())
	}
}

// fingerprint identifies what an audit depends on: the loaded policies
// (name, UID, generation: not how often they were republished), the
// exceptions and the parameter objects. The exceptions are their version
// and their next expiry: one that expires stops exempting without a new
// version, and the violation it hid is due at once, not at the interval.
func (a *auditor) fingerprint() string {
	var ids []string
	a.validations.Each(func(name string, p *engine.CompiledValidation, err error) {
		if p != nil {
			ids = append(ids, name+"/"+string(p.UID)+"/"+strconv.FormatInt(p.Generation, 10))
		}
	})
	sort.Strings(ids)
	x := a.deps.Exceptions
	return strings.Join(ids, ",") + ";" + strconv.FormatUint(x.ExceptionsVersion(), 10) + "@" + x.NextExpiry(a.now()).Format(time.RFC3339Nano) +
		";" + strconv.FormatUint(a.deps.ParamChanges(), 10)
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (a *auditor) NeedLeaderElection() bool { return true }

// run audits once and writes the reports and statuses; it returns how
// many objects some policy matched.
func (a *auditor) run(ctx context.Context, s AuditSettings) (int, error) {
	// Broken policies too: the webhook serves them for their failure
	// policy (Fail denies what they match), and Audit reports that as an
	// error of theirs, so the audit answers as the webhook does.
	policies := map[string]*engine.CompiledValidation{}
	a.validations.Each(func(name string, p *engine.CompiledValidation, _ error) {
		if p != nil {
			policies[name] = p
		}
	})
	au := audit.New(policies, a.deps.Namespaces, a.deps.Params, a.deps.Exceptions, s.Excluded)
	reports := audit.NewReports(s.MaxResults)
	log := logf.FromContext(ctx).WithName("audit")
	notes, users := map[string][]string{}, map[schema.GroupResource][]string{}
	for _, gvr := range a.resources(policies, notes, users) {
		opts := metav1.ListOptions{Limit: auditPageSize}
		for {
			began := time.Now()
			page, err := a.deps.Dynamic.Resource(gvr).List(ctx, opts)
			if apierrors.IsResourceExpired(err) && opts.Continue != "" {
				// The list outlived etcd's compaction: go on from the
				// token the API server gives for the rest, as it is now.
				var st apierrors.APIStatus
				if errors.As(err, &st) && st.Status().ListMeta.Continue != "" {
					opts.Continue = st.Status().ListMeta.Continue
					continue
				}
			}
			if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
				log.Info("cannot list for the audit; skipped", "resource", gvr.String(), "error", err.Error())
				for _, p := range users[gvr.GroupResource()] {
					notes[p] = append(notes[p], gvr.GroupResource().String()+" cannot be listed: "+string(apierrors.ReasonForError(err)))
				}
				break
			}
			if err != nil {
				return 0, fmt.Errorf("listing %s: %w", gvr, err)
			}
			for i := range page.Items {
				res, err := au.Audit(ctx, &page.Items[i], gvr)
				if err != nil {
					return 0, err
				}
				reports.Add(res)
			}
			if opts.Continue = page.GetContinue(); opts.Continue == "" {
				break
			}
			// Paced: as long again idle as the page took, so the audit
			// takes at most about half a core from the request path.
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Since(began)):
			}
		}
	}
	// The statuses and the gauge are written whatever became of the
	// reports: they do not depend on them.
	reportsErr := a.writeReports(ctx, reports)
	a.violations.Reset()
	for name := range policies {
		a.violations.WithLabelValues(name).Set(float64(reports.Violations(name)))
	}
	return reports.Audited(), errors.Join(reportsErr, a.writeStatus(ctx, policies, reports, notes))
}

// resources are the resources the policies' rules name that CREATE
// matches, at a version the API server serves.
// What it cannot audit is in notes, by policy, and by resource in users.
func (a *auditor) resources(policies map[string]*engine.CompiledValidation, notes map[string][]string, users map[schema.GroupResource][]string) []schema.GroupVersionResource {
	byGR := map[schema.GroupResource]schema.GroupVersionResource{} // one version per resource
	note := func(policy, what string) {
		if !slices.Contains(notes[policy], what) {
			notes[policy] = append(notes[policy], what)
		}
	}
	for name, p := range policies {
		for _, r := range p.Rules() {
			if !createMatches(r) {
				continue
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					switch {
					case strings.Contains(res, "/"):
						continue // a subresource is not an object to list
					case g == "*" || res == "*":
						note(name, "rules with \"*\" audit only the kinds the operator may list (docs/operations.md)")
					}
					for _, gr := range expand(g, res) {
						// The first version listed that is served; "*": the
						// preferred one. A wildcard's kind at a version the
						// rule does not name is not matched: skipped quietly.
						gvr, ok := a.served(gr, r.APIVersions)
						switch {
						case ok && gvr.Group == "" && gvr.Resource == "secrets":
							// On what the name resolves to: "secret" or
							// "Secrets" are Secrets too.
							note(name, "Secrets are never read")
						case ok:
							if byGR[gvr.GroupResource()] == (schema.GroupVersionResource{}) {
								byGR[gvr.GroupResource()] = gvr
							}
							users[gvr.GroupResource()] = append(users[gvr.GroupResource()], name)
						case g != "*" && res != "*":
							note(name, gr.String()+" is not served")
						}
					}
				}
			}
		}
	}
	out := make([]schema.GroupVersionResource, 0, len(byGR))
	for _, gvr := range byGR {
		out = append(out, gvr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// served is the resource at the first of the versions the API server
// serves ("*": its preferred one).
func (a *auditor) served(gr schema.GroupResource, versions []string) (schema.GroupVersionResource, bool) {
	for _, version := range versions {
		if version == "*" {
			version = ""
		}
		if gvr, err := a.deps.Mapper.ResourceFor(gr.WithVersion(version)); err == nil {
			return gvr, true
		}
	}
	return schema.GroupVersionResource{}, false
}

func createMatches(r admissionregistrationv1.RuleWithOperations) bool {
	for _, op := range r.Operations {
		if op == admissionregistrationv1.Create || op == admissionregistrationv1.OperationAll {
			return true
		}
	}
	return false
}

// writeReports writes one PolicyReport per namespace with results, the
// ClusterPolicyReport for cluster-scoped objects, and deletes the
// operator's reports of namespaces that have none now.
//
// A namespace being deleted gets no report (the API server refuses new
// content there, and its report would go with it). A namespace's report
// that cannot be written or deleted is logged, not returned: one namespace
// does not fail the audit of all the others, to be listed again a minute
// later for the same outcome. What is returned is what concerns them all:
// the ClusterPolicyReport and the list of reports.
func (a *auditor) writeReports(ctx context.Context, reports *audit.Reports) error {
	log := logf.FromContext(ctx).WithName("audit")
	now := a.now()
	keep, keepCluster := map[string]bool{}, false
	var errs []error
	for _, r := range reports.Reports() {
		if r.Namespace != "" {
			keep[r.Namespace] = true
			if ns, err := a.deps.Namespaces.Get(r.Namespace); err == nil && ns.DeletionTimestamp != nil {
				continue
			}
		}
		summary := reportsv1alpha2.PolicyReportSummary{Pass: r.Summary.Pass, Fail: r.Summary.Fail, Warn: r.Summary.Warn, Error: r.Summary.Error}
		results := make([]reportsv1alpha2.PolicyReportResult, 0, len(r.Results))
		for _, res := range r.Results {
			o := res.Object
			results = append(results, reportsv1alpha2.PolicyReportResult{
				Source: ReportSource, Policy: res.Policy, Result: reportsv1alpha2.PolicyResult(res.Outcome), Message: res.Message, Scored: true,
				Timestamp: metav1.Timestamp{Seconds: now.Unix()},
				Resources: []corev1.ObjectReference{{APIVersion: o.APIVersion, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, UID: o.UID}},
			})
		}
		meta := metav1.ObjectMeta{Name: ReportName, Namespace: r.Namespace, Labels: map[string]string{managedBy: ReportSource},
			Annotations: map[string]string{omittedAnnot: strconv.Itoa(r.Omitted)}}
		if r.Namespace == "" {
			keepCluster = true
			if err := a.put(ctx, &reportsv1alpha2.ClusterPolicyReport{ObjectMeta: meta, Summary: summary, Results: results}); err != nil {
				errs = append(errs, fmt.Errorf("writing the ClusterPolicyReport: %w", err))
			}
			continue
		}
		if err := a.put(ctx, &reportsv1alpha2.PolicyReport{ObjectMeta: meta, Summary: summary, Results: results}); err != nil {
			log.Error(err, "writing the audit report; skipped", "namespace", r.Namespace)
		}
	}
	if !keepCluster {
		cluster := &reportsv1alpha2.ClusterPolicyReport{ObjectMeta: metav1.ObjectMeta{Name: ReportName}}
		if err := client.IgnoreNotFound(a.client.Delete(ctx, cluster)); err != nil {
			errs = append(errs, fmt.Errorf("deleting the ClusterPolicyReport: %w", err))
		}
	}
	var list reportsv1alpha2.PolicyReportList
	if err := a.client.List(ctx, &list, client.MatchingLabels{managedBy: ReportSource}); err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing the audit's reports: %w", err))...)
	}
	for i := range list.Items {
		if p := &list.Items[i]; p.Name == ReportName && !keep[p.Namespace] {
			if err := client.IgnoreNotFound(a.client.Delete(ctx, p)); err != nil {
				log.Error(err, "deleting the audit report; skipped", "namespace", p.Namespace)
			}
		}
	}
	return errors.Join(errs...)
}

// put creates obj or replaces the existing one whole.
func (a *auditor) put(ctx context.Context, obj client.Object) error {
	existing := obj.DeepCopyObject().(client.Object)
	err := a.client.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	switch {
	case apierrors.IsNotFound(err):
		return a.client.Create(ctx, obj)
	case err != nil:
		return err
	}
	obj.SetResourceVersion(existing.GetResourceVersion())
	return a.client.Update(ctx, obj)
}

// writeStatus writes each policy's status.audit.
func (a *auditor) writeStatus(ctx context.Context, policies map[string]*engine.CompiledValidation, reports *audit.Reports, notes map[string][]string) error {
	now := metav1.NewTime(a.now())
	for name, p := range policies {
		var vp admissionv1alpha1.ValidationPolicy
		if err := a.client.Get(ctx, client.ObjectKey{Name: name}, &vp); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		st := &admissionv1alpha1.AuditStatus{Violations: int32(reports.Violations(name)), Audited: int32(reports.Matched(name)), Time: now, ObservedGeneration: p.Generation}
		if n := notes[name]; len(n) > 0 {
			st.Message = "not audited: " + strings.Join(n, "; ")
		}
		before := vp.DeepCopy()
		vp.Status.Audit = st
		if err := a.client.Status().Patch(ctx, &vp, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("writing the audit status of ValidationPolicy %s: %w", name, err)
		}
	}
	return nil
}
