// Command soak runs mixed traffic through all four phases for a while
// (make soak: 10 minutes) at the highest rate the machine sustains, and
// reports, per minute, the requests and requests per second, unexpected
// answers by kind, latency p50 and p99, the operator's RSS at the end of
// the minute and the CPU it used in it, and how many decisions each
// webhook took; then whether the soak's targets were met: no unexpected
// answer, every minute's p99 within 2x of the first minute's, the last
// minute's RSS within 10% of the third's.
//
// It starts a control plane (etcd, kube-apiserver) and the operator as a
// process of its own, running as its ServiceAccount with config/default's
// RBAC and admission on the webhook (execution: Webhook), and the fixtures
// of test/faults: StaticToken users (a token per request, in turn, so that
// the API server's token and authorization caches, 5 s here, miss often),
// a ServiceAccount bot, a Deny and an Allow AccessPolicy, a MutationPolicy
// and a ValidationPolicy. Each worker, in turn: a user creates a ConfigMap
// (admitted and labelled), creates one the ValidationPolicy refuses, reads
// one; bot is refused a delete by the Deny AccessPolicy. Created
// ConfigMaps are deleted by the admin in the background, so etcd stays
// bounded. Loopback only; bounded in time (duration + warm-up + 5 min);
// stops everything it starts, on SIGINT too. Writes a Markdown report to
// -out and prints it; exits 1 if any answer was unexpected.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/portcullis-io/portcullis/internal/controlplane"
	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/devenv"
	"github.com/portcullis-io/portcullis/internal/procstat"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to measure")
	warmup := flag.Duration("warmup", 15*time.Second, "traffic before measuring, not reported")
	workers := flag.Int("workers", 6, "concurrent workers")
	users := flag.Int("users", 500, "StaticToken users the requests take turns at")
	out := flag.String("out", "", "write the Markdown report here too")
	operator := flag.String("operator", "", "the portcullis binary; empty builds ./cmd/portcullis")
	keep := flag.Bool("keep", false, "keep the state directory (logs, etcd) at the end")
	flag.Parse()
	os.Exit(run(*duration, *warmup, *workers, *users, *out, *operator, *keep))
}

func run(duration, warmup time.Duration, workers, users int, out, operator string, keep bool) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "soak:", err); return 2 }
	if duration <= 0 || workers < 1 || users < 1 {
		return fail(fmt.Errorf("want -duration > 0, -workers ≥ 1 and -users ≥ 1"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration+warmup+5*time.Minute)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := repoRoot()
	if err != nil {
		return fail(err)
	}
	// PORTCULLIS_ASSETS (else KUBEBUILDER_ASSETS), as make soak sets it.
	assets, err := controlplane.AssetsDir()
	if err != nil {
		return fail(err)
	}
	state, err := os.MkdirTemp("", "portcullis-soak-")
	if err != nil {
		return fail(err)
	}
	failed := true
	defer func() {
		if keep || failed {
			fmt.Fprintln(os.Stderr, "soak: state and logs kept in", state)
			return
		}
		os.RemoveAll(state)
	}()
	if operator == "" {
		fmt.Fprintln(os.Stderr, "soak: building the operator")
		if operator, err = buildOperator(ctx, root, state); err != nil {
			return fail(err)
		}
	}
	cpLog, err := os.Create(filepath.Join(state, "control-plane.log"))
	if err != nil {
		return fail(err)
	}
	defer cpLog.Close()

	fmt.Fprintln(os.Stderr, "soak: starting the control plane and the operator")
	env, err := startEnv(ctx, root, state, operator, assets, cpLog)
	if err != nil {
		return fail(fmt.Errorf("starting: %w%s", err, logs(state)))
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "soak: stopping")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "soak: stopping:", err)
		}
	}()
	adminCfg := env.ControlPlane.AdminConfig()
	adminCfg.QPS, adminCfg.Burst = -1, 0
	admin, err := kubernetes.NewForConfig(adminCfg)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "soak: applying the fixtures and %d StaticToken users\n", users)
	tokens, bot, err := setUp(ctx, env, admin, users)
	if err != nil {
		return fail(fmt.Errorf("setting up: %w%s", err, logs(state)))
	}
	base := rest.AnonymousClientConfig(env.ControlPlane.AdminConfig())
	// One request per call: no client-side rate limit, a bound per request.
	base.QPS, base.Burst, base.Timeout = -1, 0, 30*time.Second
	t := &traffic{base: base, users: tokens, bot: bot, admin: admin}
	if err := t.ready(ctx, 2*time.Minute); err != nil {
		return fail(fmt.Errorf("%w%s", err, logs(state)))
	}

	minutes := int(math.Ceil(duration.Minutes()))
	began := time.Now()
	start := began.Add(warmup)
	end := start.Add(duration)
	rec := newRecorder(start, end, minutes)
	s := &sampler{env: env, state: state}
	fmt.Fprintf(os.Stderr, "soak: %d workers, %v warm-up, then %v measured\n", workers, warmup, duration)
	loadDone := make(chan error, 1)
	go func() { loadDone <- t.run(ctx, end, workers, rec) }()

	// Samples at the start and at the end of each minute.
	var samples []sample
	interrupted := false
	for k := 0; k <= minutes; k++ {
		at := start.Add(time.Duration(k) * time.Minute)
		if at.After(end) {
			at = end
		}
		select {
		case <-time.After(time.Until(at)):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		samples = append(samples, s.take(ctx, at))
		if k > 0 {
			fmt.Fprintf(os.Stderr, "soak: minute %d: %s\n", k, rec.line(k-1, samples[k-1], samples[k]))
		}
	}
	if err := <-loadDone; err != nil {
		return fail(err)
	}

	var report bytes.Buffer
	unexpected := writeReport(&report, rec, samples, reportInfo{
		root: root, workers: workers, users: users, warmup: warmup, duration: duration,
		interrupted: interrupted, decisionLines: countLines(env.Processes[0].LogPath, `"logger":"decision"`),
	})
	fmt.Print(report.String())
	if out != "" {
		if err := os.WriteFile(out, report.Bytes(), 0o644); err != nil {
			return fail(err)
		}
	}
	if interrupted || unexpected > 0 {
		return 1
	}
	failed = false
	return 0
}

// sample is what is read at a minute's boundary.
type sample struct {
	at           time.Time
	rss          uint64        // the operator's
	cpu          time.Duration // the operator's, cumulative
	apiserverRSS uint64
	etcdDB       int64
	// cumulative CPU of kube-apiserver, etcd and this process (the client)
	apiserverCPU, etcdCPU, selfCPU time.Duration
	etcdRSS                        uint64
	// the whole machine's busy and stolen CPU, cumulative (/proc/stat)
	machineBusy, machineSteal time.Duration
	decisions                 map[string]float64 // cumulative, by phase
	rssErr, metricsErrs       string
}

type sampler struct {
	env   *devenv.Env
	state string
}

func (s *sampler) take(ctx context.Context, at time.Time) sample {
	sm := sample{at: at}
	p := s.env.Processes[0]
	var err error
	if sm.rss, err = p.RSS(); err != nil {
		sm.rssErr = err.Error()
	}
	sm.cpu, _ = p.CPUTime()
	if pid := findProcess("kube-apiserver", s.state); pid > 0 {
		sm.apiserverRSS, _ = procstat.RSS(pid)
		sm.apiserverCPU, _ = procstat.CPU(pid)
	}
	if pid := findProcess("etcd", s.state); pid > 0 {
		sm.etcdRSS, _ = procstat.RSS(pid)
		sm.etcdCPU, _ = procstat.CPU(pid)
	}
	sm.selfCPU, _ = procstat.CPU(os.Getpid())
	sm.machineBusy, sm.machineSteal = machineCPU()
	if fi, err := os.Stat(filepath.Join(s.state, "control-plane", "etcd", "member", "snap", "db")); err == nil {
		sm.etcdDB = fi.Size()
	}
	sm.decisions, err = s.decisions(ctx)
	if err != nil {
		sm.metricsErrs = err.Error()
	}
	return sm
}

// metricsClient reaches the operator's HTTPS /metrics on loopback, whose
// certificate is self-signed.
var metricsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402: loopback

// decisions reads portcullis_decisions_total, summed by phase.
func (s *sampler) decisions(ctx context.Context) (map[string]float64, error) {
	token, err := s.env.MetricsToken(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.env.MetricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "portcullis_decisions_total{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `phase="`)
		phase, _, _ := strings.Cut(rest, `"`)
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			out[phase] += v
		}
	}
	return out, sc.Err()
}

// machineCPU is the CPU time all processes used (user, nice, system,
// irq, softirq) and the time the hypervisor stole, from /proc/stat.
func machineCPU() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	tick := func(i int) time.Duration {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		return time.Duration(v) * time.Second / 100 // USER_HZ
	}
	return tick(1) + tick(2) + tick(3) + tick(6) + tick(7), tick(8)
}

// findProcess is the pid of the process named name whose command line
// mentions dir (this run's state directory), 0 if none.
func findProcess(name, dir string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == name && strings.Contains(string(b), dir) {
			return pid
		}
	}
	return 0
}

var phases = []string{decision.PhaseAuthenticate, decision.PhaseAuthorize, decision.PhaseMutate, decision.PhaseValidate}

// line is minute i's progress line.
func (r *recorder) line(i int, a, b sample) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.minutes[i]
	secs := b.at.Sub(a.at).Seconds()
	return fmt.Sprintf("%d requests (%.0f/s), %d unexpected, p50 %s ms, p99 %s ms, operator RSS %.1f MiB",
		len(m.lat), float64(len(m.lat))/secs, total(m.errors), ms(percentile(m.lat, 50)), ms(percentile(m.lat, 99)), mib(b.rss))
}

type reportInfo struct {
	root             string
	workers, users   int
	warmup, duration time.Duration
	interrupted      bool
	// decisionLines is how many decision log lines the operator wrote
	// since it started (-1: not read).
	decisionLines int
}

// countLines counts the lines of path that contain s, -1 if it cannot
// be read.
func countLines(path, s string) int {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	if sc.Err() != nil {
		return -1
	}
	return n
}

// writeReport writes the Markdown report and returns the number of
// unexpected answers.
func writeReport(w io.Writer, r *recorder, samples []sample, in reportInfo) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "### Soak: %v through all four phases\n\n", in.duration)
	fmt.Fprintf(w, "Measured %s at %s on %s; %d workers, %d StaticToken users (a token per request, in turn), %v warm-up not counted; the API server's token and authorization webhook caches 5 s; one operator process, as its ServiceAccount, admission on the webhook.\n\n",
		time.Now().UTC().Format("2006-01-02"), commit(in.root), hostDesc(), in.workers, in.users, in.warmup)
	if in.interrupted {
		fmt.Fprintf(w, "**Interrupted** after %d of %d minutes.\n\n", max(len(samples)-1, 0), len(r.minutes))
	}
	fmt.Fprintln(w, "| minute | requests | req/s | unexpected | p50 ms | p99 ms | operator RSS MiB | operator CPU s | decisions authn / authz / mutate / validate | kube-apiserver RSS MiB | etcd db MiB |")
	fmt.Fprintln(w, "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	var all []time.Duration
	var steps [4][]time.Duration
	errs := map[string]int{}
	n := 0
	var p99s []time.Duration
	var rss []uint64
	for i := 0; i+1 < len(samples) && i < len(r.minutes); i++ {
		m, a, b := r.minutes[i], samples[i], samples[i+1]
		secs := b.at.Sub(a.at).Seconds()
		n += len(m.lat)
		all = append(all, m.lat...)
		for s := range steps {
			steps[s] = append(steps[s], m.steps[s]...)
		}
		for k, v := range m.errors {
			errs[k] += v
		}
		p99s = append(p99s, percentile(m.lat, 99))
		rss = append(rss, b.rss)
		var dec []string
		for _, p := range phases {
			dec = append(dec, fmt.Sprintf("%.0f", b.decisions[p]-a.decisions[p]))
		}
		decs := strings.Join(dec, " / ")
		if b.metricsErrs != "" || a.metricsErrs != "" {
			decs = "–"
		}
		fmt.Fprintf(w, "| %d | %d | %.0f | %s | %s | %s | %.1f | %.1f | %s | %.0f | %.1f |\n", i+1, len(m.lat), float64(len(m.lat))/secs,
			errorList(m.errors), ms(percentile(m.lat, 50)), ms(percentile(m.lat, 99)), mib(b.rss), (b.cpu - a.cpu).Seconds(),
			decs, mib(b.apiserverRSS), mib(uint64(max(b.etcdDB, 0))))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Where the CPU went, per minute (CPU seconds; the machine has 60 per core and minute: 120), and etcd's memory:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| minute | operator | kube-apiserver | etcd | soak client | total | other processes on the host | stolen by the hypervisor | operator µs per request | etcd RSS MiB |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i := 0; i+1 < len(samples) && i < len(r.minutes); i++ {
		a, b := samples[i], samples[i+1]
		op, as, et, self := b.cpu-a.cpu, b.apiserverCPU-a.apiserverCPU, b.etcdCPU-a.etcdCPU, b.selfCPU-a.selfCPU
		per := 0.0
		if k := len(r.minutes[i].lat); k > 0 {
			per = float64(op.Microseconds()) / float64(k)
		}
		ours := op + as + et + self
		other := max(b.machineBusy-a.machineBusy-ours, 0)
		fmt.Fprintf(w, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f |\n", i+1, op.Seconds(), as.Seconds(), et.Seconds(), self.Seconds(),
			ours.Seconds(), other.Seconds(), (b.machineSteal - a.machineSteal).Seconds(), per, mib(b.etcdRSS))
	}
	fmt.Fprintln(w)
	measured := time.Duration(0)
	if len(samples) > 1 {
		measured = samples[len(samples)-1].at.Sub(samples[0].at)
	}
	unexpected := total(errs) + total(r.cleanupErrors)
	fmt.Fprintln(w, "| step | requests | p50 ms | p99 ms | max ms |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for s, name := range stepNames {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", name, len(steps[s]), ms(percentile(steps[s], 50)), ms(percentile(steps[s], 99)), ms(percentile(steps[s], 100)))
	}
	fmt.Fprintf(w, "| all | %d | %s | %s | %s |\n\n", len(all), ms(percentile(all, 50)), ms(percentile(all, 99)), ms(percentile(all, 100)))

	fmt.Fprintf(w, "- Total: %d requests in %v, **%.0f req/s**; the admin deleted %d created ConfigMaps in the background.\n",
		n, measured.Round(time.Second), float64(n)/math.Max(measured.Seconds(), 1e-9), r.deleted.Load())
	met := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	fmt.Fprintf(w, "- Unexpected answers: **%d** (target 0): %s.", unexpected, met(unexpected == 0))
	if unexpected > 0 {
		fmt.Fprintf(w, " %s", errorList(errs))
		if len(r.cleanupErrors) > 0 {
			fmt.Fprintf(w, "; cleanup deletes: %s", errorList(r.cleanupErrors))
		}
		keys := make([]string, 0, len(r.samples))
		for k := range r.samples {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "\n  - %s, e.g. `%s`", k, r.samples[k])
		}
	}
	fmt.Fprintln(w)
	if len(p99s) > 0 && p99s[0] > 0 {
		worst, at := 0.0, 0
		for i, p := range p99s {
			if x := float64(p) / float64(p99s[0]); x > worst {
				worst, at = x, i+1
			}
		}
		fmt.Fprintf(w, "- p99 per minute against the first minute's (%s ms): at most **%.2fx** (minute %d) (target within 2x): %s.\n", ms(p99s[0]), worst, at, met(worst <= 2))
	}
	if len(rss) >= 3 {
		third, last := float64(rss[2]), float64(rss[len(rss)-1])
		d := (last - third) / third
		fmt.Fprintf(w, "- Operator RSS, last minute against the third: %.1f MiB against %.1f MiB, **%+.1f%%** (target within 10%%): %s.\n", mib(rss[len(rss)-1]), mib(rss[2]), d*100, met(math.Abs(d) <= 0.10))
	} else {
		fmt.Fprintln(w, "- Operator RSS, last minute against the third: n/a (fewer than 3 minutes).")
	}
	if len(samples) > 0 && in.decisionLines >= 0 {
		var decided float64
		for _, v := range samples[len(samples)-1].decisions {
			decided += v
		}
		if decided > 0 {
			fmt.Fprintf(w, "- Decision log: %d lines from the logger `decision` for %.0f decisions counted by `portcullis_decisions_total` since the operator started (%.1f%%).\n",
				in.decisionLines, decided, 100*float64(in.decisionLines)/decided)
		}
	}
	for i, s := range samples {
		if s.rssErr != "" {
			fmt.Fprintf(w, "- Sample %d: operator RSS not read: %s.\n", i, s.rssErr)
		}
		if s.metricsErrs != "" {
			fmt.Fprintf(w, "- Sample %d: /metrics not read: %s.\n", i, s.metricsErrs)
		}
	}
	fmt.Fprintln(w)
	return unexpected
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func errorList(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, "; ")
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func hostDesc() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			break
		}
	}
	return fmt.Sprintf("%d cores (%s), %s/%s, %s, loopback", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
