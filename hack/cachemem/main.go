// Command cachemem measures how the operator's memory grows with objects
// it has no business caching: it starts the local control plane with the
// operator in process (internal/devenv), creates -n ConfigMaps in a
// namespace of their own, and prints the operator process's live heap
// before and after (runtime.MemStats.HeapAlloc after a GC). It stops by
// itself and removes what it made.
//
//	KUBEBUILDER_ASSETS=$(hack/control-plane.sh) go run ./hack/cachemem -n 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/portcullis-io/portcullis/internal/devenv"
)

func main() {
	n := flag.Int("n", 10000, "ConfigMaps to create")
	workers := flag.Int("workers", 8, "concurrent creates")
	flag.Parse()
	if err := run(*n, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func run(n, workers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	state, err := os.MkdirTemp("", "cachemem-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	env, err := devenv.Start(ctx, devenv.Options{StateDir: state, WithoutControllerManager: true})
	if err != nil {
		return err
	}
	defer env.Stop()
	cs, err := kubernetes.NewForConfig(env.ControlPlane.AdminConfig())
	if err != nil {
		return err
	}
	ns := "cachemem"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	time.Sleep(5 * time.Second) // let start-up settle
	before := heap()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	data := map[string]string{"payload": fmt.Sprintf("%0512d", 0)} // half a KiB each
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Namespace: ns}, Data: data}
				if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	created := time.Since(start)
	time.Sleep(10 * time.Second) // informers, if any, catch up
	after := heap()
	fmt.Printf("created %d ConfigMaps in %v\nheap before %.1f MiB, after %.1f MiB, growth %.1f MiB\n",
		n, created.Round(time.Second), float64(before)/(1<<20), float64(after)/(1<<20), (float64(after)-float64(before))/(1<<20))
	return nil
}
