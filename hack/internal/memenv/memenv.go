// Package memenv is what the memory measurements under hack share: the
// local control plane with the operator in process, in a state directory
// of its own, the live heap, and many ConfigMaps created in parallel.
package memenv

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/portcullis-io/portcullis/internal/devenv"
)

// Env is a started control plane with the operator and an admin clientset.
type Env struct {
	*devenv.Env
	Clientset *kubernetes.Clientset
	state     string
}

// Start starts the control plane (without the controller manager) and the
// operator, in a temporary state directory named after prefix.
func Start(ctx context.Context, prefix string) (*Env, error) {
	state, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return nil, err
	}
	env, err := devenv.Start(ctx, devenv.Options{StateDir: state, WithoutControllerManager: true})
	if err != nil {
		os.RemoveAll(state)
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(env.ControlPlane.AdminConfig())
	if err != nil {
		env.Stop()
		os.RemoveAll(state)
		return nil, err
	}
	return &Env{Env: env, Clientset: cs, state: state}, nil
}

// Stop stops everything Start started and removes its state.
func (e *Env) Stop() {
	e.Env.Stop()
	os.RemoveAll(e.state)
}

// Heap is the process's live heap after a full collection.
func Heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// MiB is b in mebibytes.
func MiB(b uint64) float64 { return float64(b) / (1 << 20) }

// CreateConfigMaps creates the n ConfigMaps mk makes (i from 1 to n) in
// namespace ns, with workers concurrent creates; the first error stops it.
func (e *Env) CreateConfigMaps(ctx context.Context, ns string, n, workers int, mk func(i int) *corev1.ConfigMap) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) || firstErr.Load() != nil {
					return
				}
				if _, err := e.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, mk(int(i)), metav1.CreateOptions{}); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("creating ConfigMap %d: %w", i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

// CreateNamespaces creates the namespaces.
func (e *Env) CreateNamespaces(ctx context.Context, names ...string) error {
	for _, ns := range names {
		if _, err := e.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}
