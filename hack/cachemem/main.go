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
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis-io/portcullis/hack/internal/memenv"
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

func run(n, workers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	env, err := memenv.Start(ctx, "cachemem")
	if err != nil {
		return err
	}
	defer env.Stop()
	ns := "cachemem"
	if err := env.CreateNamespaces(ctx, ns); err != nil {
		return err
	}
	time.Sleep(5 * time.Second) // let start-up settle
	before := memenv.Heap()
	start := time.Now()
	data := map[string]string{"payload": fmt.Sprintf("%0512d", 0)} // half a KiB each
	if err := env.CreateConfigMaps(ctx, ns, n, workers, func(i int) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Namespace: ns}, Data: data}
	}); err != nil {
		return err
	}
	created := time.Since(start)
	time.Sleep(10 * time.Second) // informers, if any, catch up
	after := memenv.Heap()
	fmt.Printf("created %d ConfigMaps in %v\nheap before %.1f MiB, after %.1f MiB, growth %.1f MiB\n",
		n, created.Round(time.Second), memenv.MiB(before), memenv.MiB(after), memenv.MiB(after)-memenv.MiB(before))
	return nil
}
