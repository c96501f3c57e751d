package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The four steps each worker takes in turn.
var stepNames = []string{"create", "refused create", "get", "denied delete"}

// traffic is the users and clients the workers use.
type traffic struct {
	base   *rest.Config // the API server's URL and CA, no credentials
	users  []string     // the StaticToken users' tokens
	bot    string       // bot's ServiceAccount token
	admin  *kubernetes.Clientset
	next   atomic.Uint64 // which user's token the next request carries
	seq    atomic.Int64  // names of created ConfigMaps
	victim atomic.Uint64 // which victim the next get or delete names
}

// rotatingToken sets, on every request, the next user's token: each
// request is some user's, so the API server's token and authorization
// caches, keyed by token and by user, miss often and the webhooks are
// called all along.
type rotatingToken struct {
	next http.RoundTripper
	t    *traffic
}

func (r rotatingToken) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	tok := r.t.users[r.t.next.Add(1)%uint64(len(r.t.users))]
	req.Header.Set("Authorization", "Bearer "+tok)
	return r.next.RoundTrip(req)
}

// clients are one worker's: users (a token per request) and bot.
type clients struct {
	users, bot *kubernetes.Clientset
}

func (t *traffic) clients() (*clients, error) {
	u := rest.CopyConfig(t.base)
	u.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rotatingToken{next: rt, t: t} }
	b := rest.CopyConfig(t.base)
	b.BearerToken = t.bot
	var c clients
	var err error
	if c.users, err = kubernetes.NewForConfig(u); err != nil {
		return nil, err
	}
	if c.bot, err = kubernetes.NewForConfig(b); err != nil {
		return nil, err
	}
	return &c, nil
}

// step runs step i as c and returns the kind of unexpected answer ("" if
// it was the expected one) and an example message, and the name of a
// ConfigMap it created.
func (t *traffic) step(ctx context.Context, c *clients, i int) (kind, msg, created string) {
	switch i {
	case 0: // a user creates a ConfigMap: admitted, labelled by the MutationPolicy
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", t.seq.Add(1))}}
		got, err := c.users.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		switch {
		case err != nil:
			return kindOf(err), firstLine(err), ""
		case got.Labels["mutated"] != "yes":
			return "admitted, not mutated", fmt.Sprintf("labels %v", got.Labels), got.Name
		}
		return "", "", got.Name
	case 1: // one the ValidationPolicy refuses
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("refused-%d", t.seq.Add(1))}, Data: map[string]string{"forbidden": "x"}}
		got, err := c.users.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		switch {
		case err == nil:
			return "admitted", "", got.Name
		case !strings.Contains(err.Error(), refusedByPolicy):
			return kindOf(err), firstLine(err), ""
		}
		return "", "", ""
	case 2: // a user reads one
		_, err := c.users.CoreV1().ConfigMaps(ns).Get(ctx, victimName(int(t.victim.Add(1)%victims)), metav1.GetOptions{})
		if err != nil {
			return kindOf(err), firstLine(err), ""
		}
		return "", "", ""
	default: // bot, whom RBAC lets, is refused a delete by the Deny AccessPolicy
		err := c.bot.CoreV1().ConfigMaps(ns).Delete(ctx, victimName(int(t.victim.Add(1)%victims)), metav1.DeleteOptions{})
		switch {
		case err == nil:
			return "deleted", "", ""
		case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "bot-keeps-configmaps"):
			return kindOf(err), firstLine(err), ""
		}
		return "", "", ""
	}
}

// ready waits until every step, and bot's read the Allow AccessPolicy
// grants, answers as expected three times in a row.
func (t *traffic) ready(ctx context.Context, within time.Duration) error {
	c, err := t.clients()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	ok, last := 0, ""
	for ok < 3 {
		pass := true
		for i := range stepNames {
			kind, msg, created := t.step(ctx, c, i)
			if created != "" {
				_ = t.admin.CoreV1().ConfigMaps(ns).Delete(ctx, created, metav1.DeleteOptions{})
			}
			if kind != "" {
				pass, last = false, stepNames[i]+": "+kind+": "+msg
			}
		}
		if _, err := c.bot.CoreV1().Secrets(ns).Get(ctx, "s", metav1.GetOptions{}); err != nil {
			pass, last = false, "bot reads a Secret (Allow AccessPolicy): "+firstLine(err)
		}
		if pass {
			ok++
			continue
		}
		ok = 0
		select {
		case <-ctx.Done():
			return fmt.Errorf("the phases did not answer as expected within %v (last: %s)", within, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// minute is what the requests that ended in one minute saw.
type minute struct {
	lat    []time.Duration
	steps  [4][]time.Duration
	errors map[string]int
}

// recorder keeps per-minute figures from start on.
type recorder struct {
	start   time.Time
	end     time.Time
	mu      sync.Mutex
	minutes []*minute
	samples map[string]string // an example message per error kind
	// cleanup: ConfigMaps the admin deleted, and what failed.
	deleted       atomic.Int64
	cleanupErrors map[string]int
}

func newRecorder(start, end time.Time, n int) *recorder {
	r := &recorder{start: start, end: end, samples: map[string]string{}, cleanupErrors: map[string]int{}}
	for range n {
		r.minutes = append(r.minutes, &minute{errors: map[string]int{}})
	}
	return r
}

func (r *recorder) record(end time.Time, step int, took time.Duration, kind, msg string) {
	if end.Before(r.start) || end.After(r.end) {
		return // warm-up, or after the end
	}
	i := int(end.Sub(r.start) / time.Minute)
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.minutes) {
		return
	}
	m := r.minutes[i]
	m.lat = append(m.lat, took)
	m.steps[step] = append(m.steps[step], took)
	if kind != "" {
		k := stepNames[step] + ": " + kind
		m.errors[k]++
		if _, ok := r.samples[k]; !ok {
			r.samples[k] = msg
		}
	}
}

// run runs workers until until (or until ctx ends, without waiting for
// what is in flight); the requests themselves are not cancelled at until,
// so the last ones end as they would have. Created ConfigMaps are deleted by the
// admin from deleters goroutines, so that etcd stays bounded.
func (t *traffic) run(ctx context.Context, until time.Time, workers int, r *recorder) error {
	cs := make([]*clients, workers)
	for w := range cs {
		var err error
		if cs[w], err = t.clients(); err != nil {
			return err
		}
	}
	created := make(chan string, 4096)
	var wg, dwg sync.WaitGroup
	for range 2 {
		dwg.Go(func() {
			for name := range created {
				err := t.admin.CoreV1().ConfigMaps(ns).Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					r.mu.Lock()
					r.cleanupErrors[kindOf(err)]++
					r.mu.Unlock()
					continue
				}
				r.deleted.Add(1)
			}
		})
	}
	for w := range workers {
		c := cs[w]
		wg.Go(func() {
			for i := w; ctx.Err() == nil && time.Now().Before(until); i++ {
				step := i % len(stepNames)
				began := time.Now()
				kind, msg, name := t.step(ctx, c, step)
				end := time.Now()
				if ctx.Err() == nil {
					r.record(end, step, end.Sub(began), kind, msg)
				}
				if name != "" {
					created <- name
				}
			}
		})
	}
	wg.Wait()
	close(created)
	dwg.Wait()
	return nil
}

// kindOf classifies an error: the HTTP code and reason of an API status,
// else the message with numbers blanked, so that kinds do not multiply.
func kindOf(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		return fmt.Sprintf("%d %s", s.Code, s.Reason)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	msg := digits.ReplaceAllString(firstLine(err), "N")
	if len(msg) > 80 {
		msg = msg[:80] + "…"
	}
	return msg
}

var digits = regexp.MustCompile(`[0-9]+`)

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
