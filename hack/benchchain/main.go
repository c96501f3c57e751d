// Command benchchain measures the whole chain through a real kube-apiserver
// (make bench-chain): the built-ins (token file, RBAC,
// Mutating/ValidatingAdmissionPolicy), a no-op webhook server wired exactly
// like Portcullis, Portcullis with execution Webhook and Portcullis with
// Auto, each serving the same workload, started side by side and measured
// interleaved in one run, with the API server's caches at their cluster
// defaults and off. As a token user with client-go it measures sequential
// creates (admitted and rejected) and gets, p50/p90/p99, and 8-worker
// create throughput, and the operator's CPU per request and RSS during
// it; it writes a Markdown table of figures and ratios. Each configuration
// runs in a child process of its own (the operator in it, its control
// plane as that child's children), so the operator's CPU and memory are
// read from /proc. Loopback only; bounded in time; stops what it starts.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/portcullis-io/portcullis/internal/procstat"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "env" {
		fs := flag.NewFlagSet("env", flag.ExitOnError)
		config := fs.String("config", "", "builtins, noop, webhook or auto")
		cache := fs.String("cache", "default", "default or off")
		info := fs.String("info", "", "where to write what the parent needs")
		_ = fs.Parse(os.Args[2:])
		if err := runEnv(*config, *cache, *info); err != nil {
			fmt.Fprintln(os.Stderr, "benchchain env:", err)
			os.Exit(1)
		}
		return
	}
	out := flag.String("out", "", "write the Markdown report here too")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	n := flag.Int("n", 200, "sequential requests per measure and round")
	workers := flag.Int("workers", 8, "workers of the throughput run")
	duration := flag.Duration("throughput", 5*time.Second, "length of each throughput run")
	caches := flag.String("caches", "default,off", "API server cache settings to measure")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	var report bytes.Buffer
	fmt.Fprintf(&report, "Measured %s on %s: %d rounds of %d sequential requests per measure, interleaved request by request across the configurations; %d workers for %s per configuration and round, in one-second slices interleaved the same way.\n\n",
		time.Now().UTC().Format("2006-01-02"), hostDesc(), *rounds, *n, *workers, *duration)
	for _, cache := range strings.Split(*caches, ",") {
		res, err := measure(ctx, cache, *rounds, *n, *workers, *duration)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchchain:", err)
			os.Exit(1)
		}
		writeTable(&report, cache, res)
	}
	fmt.Print(report.String())
	if *out != "" {
		if err := os.WriteFile(*out, report.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "benchchain:", err)
			os.Exit(1)
		}
	}
}

var configs = []string{"builtins", "noop", "webhook", "auto"}

// child is one configuration's process and client.
type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	stdin  io.WriteCloser
	cs     *kubernetes.Clientset
	cfg    *rest.Config
}

// result is one configuration's figures.
type result struct {
	create, reject, get []time.Duration
	throughput          float64       // creates per second
	created             int64         // creates of all throughput slices
	cpu                 time.Duration // operator CPU over them
	cpuPerRequest       time.Duration
	rssMiB              float64
	errors              map[string]int
}

func measure(ctx context.Context, cache string, rounds, n, workers int, d time.Duration) (map[string]*result, error) {
	children, err := startAll(ctx, cache)
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	if err != nil {
		return nil, err
	}
	results := map[string]*result{}
	for _, c := range children {
		results[c.name] = &result{errors: map[string]int{}}
		// Warm up: connections, caches, the API server's compiled policies.
		for i := 0; i < 50; i++ {
			_ = c.create(ctx, fmt.Sprintf("warm-%d", i))
		}
		if err := c.create(ctx, "target"); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	seq := 0
	for r := 0; r < rounds; r++ {
		// Request by request, each configuration in turn (the order
		// rotating), so that all of them meet the same moments of a
		// shared, noisy host: run one after the other, a busy spell on
		// the host would fall on one configuration's figures only.
		for j := 0; j < n; j++ {
			for i := range children {
				c := children[(i+j+r)%len(children)]
				res := results[c.name]
				seq++
				name := fmt.Sprintf("cm-%d", seq)
				res.create = append(res.create, timed(func() { res.count(c.create(ctx, name), false) }))
				res.reject = append(res.reject, timed(func() { res.count(c.create(ctx, "reject-"+name), true) }))
				res.get = append(res.get, timed(func() {
					_, err := c.cs.CoreV1().ConfigMaps(benchNS).Get(ctx, "target", metav1.GetOptions{})
					res.count(err, false)
				}))
			}
		}
		// Throughput too in one-second slices, each configuration in
		// turn: one run of d per configuration would again leave each
		// to its own spell of the host.
		parts := max(1, int(d/time.Second))
		for s := 0; s < parts; s++ {
			for i := range children {
				c := children[(i+s+r)%len(children)]
				res := results[c.name]
				cpu0, _ := procstat.CPU(c.cmd.Process.Pid)
				count := c.throughput(ctx, workers, d/time.Duration(parts), fmt.Sprintf("t%d-%d", r, s), res)
				cpu1, _ := procstat.CPU(c.cmd.Process.Pid)
				res.created += count
				res.cpu += cpu1 - cpu0
				if rss, err := procRSS(c.cmd.Process.Pid); err == nil && rss > res.rssMiB {
					res.rssMiB = rss
				}
			}
		}
	}
	for _, res := range results {
		res.throughput = float64(res.created) / (d.Seconds() * float64(rounds))
		if res.created > 0 {
			res.cpuPerRequest = res.cpu / time.Duration(res.created)
		}
	}
	return results, nil
}

// count records an unexpected answer.
func (r *result) count(err error, wantRejected bool) {
	switch {
	case wantRejected && err != nil && (apierrors.IsInvalid(err) || apierrors.IsForbidden(err)) && strings.Contains(err.Error(), "reject-* are refused"):
	case wantRejected && err == nil:
		r.errors["admitted a reject-*"]++
	case !wantRejected && err == nil:
	default:
		r.errors[string(apierrors.ReasonForError(err))]++
	}
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func (c *child) create(ctx context.Context, name string) error {
	_, err := c.cs.CoreV1().ConfigMaps(benchNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	return err
}

// throughput creates ConfigMaps from workers for d and returns how many
// were created.
func (c *child) throughput(ctx context.Context, workers int, d time.Duration, prefix string, res *result) int64 {
	var done atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, err := kubernetes.NewForConfig(c.cfg)
			if err != nil {
				return
			}
			for i := 0; time.Now().Before(deadline); i++ {
				_, err := cs.CoreV1().ConfigMaps(benchNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-%d", prefix, w, i)}}, metav1.CreateOptions{})
				if err != nil {
					mu.Lock()
					res.count(err, false)
					mu.Unlock()
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return done.Load()
}

// startAll starts every configuration's child, side by side.
func startAll(ctx context.Context, cache string) ([]*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "benchchain-")
	if err != nil {
		return nil, err
	}
	var out []*child
	for _, name := range configs {
		info := filepath.Join(dir, name+".json")
		cmd := exec.CommandContext(ctx, self, "env", "-config", name, "-cache", cache, "-info", info)
		cmd.Stdout, cmd.Stderr = io.Discard, prefixed(name)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return out, err
		}
		if err := cmd.Start(); err != nil {
			return out, err
		}
		c := &child{name: name, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(c.exited) }()
		out = append(out, c)
		// One at a time: starts on 2 cores fight each other otherwise.
		if err := c.wait(ctx, info); err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
	}
	return out, nil
}

func (c *child) wait(ctx context.Context, info string) error {
	for {
		if b, err := os.ReadFile(info); err == nil && len(b) > 0 {
			var ei envInfo
			if err := json.Unmarshal(b, &ei); err != nil {
				return err
			}
			cfg, err := benchConfig(ei.Kubeconfig)
			if err != nil {
				return err
			}
			c.cfg = cfg
			c.cs, err = kubernetes.NewForConfig(cfg)
			return err
		}
		select {
		case <-c.exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *child) stop() {
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
	}
}

// procRSS is the process's resident memory in MiB.
func procRSS(pid int) (float64, error) {
	b, err := procstat.RSS(pid)
	return float64(b) / (1 << 20), err
}

func hostDesc() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	cores := strings.Count(string(b), "processor\t:")
	return fmt.Sprintf("%d cores, loopback", cores)
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func writeTable(w io.Writer, cache string, res map[string]*result) {
	names := map[string]string{
		"builtins": "built-ins (token file, RBAC, MAP, VAP)",
		"noop":     "no-op webhook server, wired like Portcullis",
		"webhook":  "Portcullis, execution: Webhook",
		"auto":     "Portcullis, execution: Auto",
	}
	fmt.Fprintf(w, "### API server caches: %s\n\n", map[string]string{"default": "cluster defaults (token 2m, authorized 5m, unauthorized 30s)", "off": "off"}[cache])
	fmt.Fprintln(w, "| configuration | create p50 / p90 / p99 ms | rejected create p50 / p90 / p99 ms | get p50 / p90 / p99 ms | creates/s, 8 workers | operator CPU per create | operator RSS | unexpected errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	for _, c := range configs {
		r := res[c]
		cpu, rss := "–", "–"
		if c == "webhook" || c == "auto" {
			cpu, rss = fmt.Sprintf("%d µs", r.cpuPerRequest.Microseconds()), fmt.Sprintf("%.0f MiB", r.rssMiB)
		}
		errs := "0"
		if len(r.errors) > 0 {
			errs = fmt.Sprint(r.errors)
		}
		fmt.Fprintf(w, "| %s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %.0f | %s | %s | %s |\n", names[c],
			ms(percentile(r.create, 50)), ms(percentile(r.create, 90)), ms(percentile(r.create, 99)),
			ms(percentile(r.reject, 50)), ms(percentile(r.reject, 90)), ms(percentile(r.reject, 99)),
			ms(percentile(r.get, 50)), ms(percentile(r.get, 90)), ms(percentile(r.get, 99)),
			r.throughput, cpu, rss, errs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| ratio | create p50 | create p99 | rejected p50 | get p50 | throughput |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	row := func(label, a, b string) {
		ra, rb := res[a], res[b]
		p := func(d []time.Duration, q int) float64 { return float64(percentile(d, q)) }
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", label,
			ratio(p(ra.create, 50), p(rb.create, 50)), ratio(p(ra.create, 99), p(rb.create, 99)),
			ratio(p(ra.reject, 50), p(rb.reject, 50)), ratio(p(ra.get, 50), p(rb.get, 50)), ratio(ra.throughput, rb.throughput))
	}
	row("Auto / built-ins (target: create p50 ≤ 1.15x, throughput ≥ 0.9x)", "auto", "builtins")
	row("Webhook / no-op webhook (target: create p50 ≤ 1.15x)", "webhook", "noop")
	row("no-op webhook / built-ins (the cost of calling any webhook)", "noop", "builtins")
	fmt.Fprintln(w)
}

// prefixed writes a child's standard error line by line, named.
func prefixed(name string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintf(os.Stderr, "[%s] %s\n", name, sc.Text())
		}
	}()
	return pw
}
