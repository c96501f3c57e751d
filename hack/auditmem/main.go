// Command auditmem measures the background audit: it starts the local
// control plane with the operator in process (internal/devenv), creates -n
// ConfigMaps (half of them violating), applies a ValidationPolicy in
// Audit over them, and prints the operator process's live heap before,
// at its peak during, and after the audit, and the p50 of requests that go
// through the validating webhook before and during it. It stops by itself
// and removes what it made.
//
//	KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go run ./hack/auditmem -n 5000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/hack/internal/memenv"
)

func main() {
	n := flag.Int("n", 5000, "ConfigMaps to create")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func policy(name, ns string) *admissionv1alpha1.ValidationPolicy {
	return &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: admissionv1alpha1.ValidationPolicySpec{
		Match: admissionv1alpha1.Match{
			Resources: []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
		},
		Action:      admissionv1alpha1.ActionAudit,
		Validations: []admissionv1alpha1.Validation{{Expression: "!has(object.metadata.labels) || !('bad' in object.metadata.labels)", Message: "no bad label"}},
	}}
}

func run(n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	env, err := memenv.Start(ctx, "auditmem")
	if err != nil {
		return err
	}
	defer env.Stop()
	cs := env.Clientset
	// The webhook serves the policies (so the requests measured call it),
	// and the audit runs after policy changes only.
	bundle := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
	for {
		err := env.Client.Patch(ctx, bundle, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"admission":{"execution":"Webhook","audit":{"interval":"1h"}}}}`)))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := env.CreateNamespaces(ctx, "auditmem", "probe"); err != nil {
		return err
	}
	if err := env.CreateConfigMaps(ctx, "auditmem", n, 8, func(i int) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Namespace: "auditmem"}, Data: map[string]string{"k": "v"}}
		if i%2 == 0 {
			cm.Labels = map[string]string{"bad": "yes"}
		}
		return cm
	}); err != nil {
		return err
	}
	// A probe policy, so that requests in namespace probe call the webhook.
	probe := policy("probe", "probe")
	if err := env.Client.Create(ctx, probe); err != nil {
		return err
	}
	if err := waitAudited(ctx, env.Client, probe); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	before := memenv.Heap()
	measure := func(d time.Duration, stop func() bool) (time.Duration, int, error) {
		var lat []time.Duration
		deadline := time.Now().Add(d)
		for i := 0; time.Now().Before(deadline) && (stop == nil || !stop()); i++ {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("probe-%d", i), Namespace: "probe"}}
			t0 := time.Now()
			if _, err := cs.CoreV1().ConfigMaps("probe").Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				return 0, 0, err
			}
			lat = append(lat, time.Since(t0))
		}
		if len(lat) == 0 {
			return 0, 0, nil
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[len(lat)/2], len(lat), nil
	}
	baseP50, baseN, err := measure(5*time.Second, nil)
	if err != nil {
		return err
	}
	// The audit of the n ConfigMaps, with requests and heap samples during.
	target := policy("no-bad-label", "auditmem")
	start := time.Now()
	if err := env.Client.Create(ctx, target); err != nil {
		return err
	}
	var peak atomic.Uint64
	var audited atomic.Bool
	sampler, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go func() {
		for sampler.Err() == nil {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var auditErr error
	go func() { auditErr = waitAudited(ctx, env.Client, target); audited.Store(true) }()
	// The audit starts once the policies have settled (2 s).
	for time.Since(start) < 2*time.Second && !audited.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	duringP50, duringN, err := measure(5*time.Minute, audited.Load)
	if err != nil {
		return err
	}
	for !audited.Load() {
		time.Sleep(50 * time.Millisecond)
	}
	stopSampling()
	if auditErr != nil {
		return auditErr
	}
	took := time.Since(start)
	after := memenv.Heap()
	fmt.Printf("%d ConfigMaps (%d violating) audited; policy created to status.audit written: %v\n", n, target.Status.Audit.Violations, took.Round(100*time.Millisecond))
	fmt.Printf("operator heap: before %.1f MiB, peak during %.1f MiB, after %.1f MiB (growth %.1f MiB)\n", memenv.MiB(before), memenv.MiB(peak.Load()), memenv.MiB(after), memenv.MiB(after)-memenv.MiB(before))
	fmt.Printf("dry-run create through the validating webhook, p50: before %v (%d requests), during the audit %v (%d requests), ratio %.2fx\n",
		baseP50.Round(10*time.Microsecond), baseN, duringP50.Round(10*time.Microsecond), duringN, float64(duringP50)/float64(baseP50))
	return nil
}

// waitAudited waits until the policy's status.audit is written.
func waitAudited(ctx context.Context, c client.Client, p *admissionv1alpha1.ValidationPolicy) error {
	for ctx.Err() == nil {
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err == nil && p.Status.Audit != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ctx.Err()
}
