package audit

import "sort"

// Summary counts a report's results by outcome.
type Summary struct {
	Pass, Fail, Warn, Error int
}

// Report is what one namespace's PolicyReport (or, for cluster-scoped
// objects, the ClusterPolicyReport: namespace "") holds: every result
// counted, the results other than passes listed up to the cap, and how
// many were left out.
type Report struct {
	Namespace string
	Summary   Summary
	Results   []Result
	Omitted   int
}

// Reports aggregates the results of one audit run. Its size is bounded by
// the number of namespaces and maxResults, not by the number of objects.
type Reports struct {
	maxResults int
	byNS       map[string]*Report
	violations map[string]int
	matched    map[string]int
	audited    int
}

// NewReports keeps at most maxResults results per report.
func NewReports(maxResults int) *Reports {
	return &Reports{maxResults: maxResults, byNS: map[string]*Report{}, violations: map[string]int{}, matched: map[string]int{}}
}

// Add records one object's results.
func (r *Reports) Add(results []Result) {
	if len(results) == 0 {
		return
	}
	r.audited++
	for _, res := range results {
		r.matched[res.Policy]++
		rep := r.byNS[res.Object.Namespace]
		if rep == nil {
			rep = &Report{Namespace: res.Object.Namespace}
			r.byNS[res.Object.Namespace] = rep
		}
		switch res.Outcome {
		case Pass:
			rep.Summary.Pass++
			continue
		case Fail:
			rep.Summary.Fail++
		case Warn:
			rep.Summary.Warn++
		case Error:
			rep.Summary.Error++
		}
		if res.Outcome != Error {
			r.violations[res.Policy]++
		}
		if len(rep.Results) < r.maxResults {
			rep.Results = append(rep.Results, res)
		} else {
			rep.Omitted++
		}
	}
}

// Reports are the reports, by namespace ("" first).
func (r *Reports) Reports() []*Report {
	out := make([]*Report, 0, len(r.byNS))
	for _, rep := range r.byNS {
		out = append(out, rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out
}

// Violations is how many objects violate the policy (fail or warn).
func (r *Reports) Violations(policy string) int { return r.violations[policy] }

// Matched is how many objects the policy matched.
func (r *Reports) Matched(policy string) int { return r.matched[policy] }

// Audited is how many objects some policy matched.
func (r *Reports) Audited() int { return r.audited }
