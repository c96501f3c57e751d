package certs

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A CA that changes on disk, as cert-manager renews a mounted ca.crt, is
// reported by Start within its interval even while no handshake asks for
// the pool; the first read and a rewrite of the same CA are not changes.
func TestCAWatchReportsANewCA(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, CAFile)
	write := func(ca []byte, at time.Time) {
		t.Helper()
		if err := os.WriteFile(path, ca, 0o600); err != nil {
			t.Fatal(err)
		}
		// Coarse file-system clocks: move the time as a new file would.
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	first, _, err := newCA(now)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := newCA(now)
	if err != nil {
		t.Fatal(err)
	}
	write(first, now.Add(-time.Minute))

	changed := make(chan struct{}, 10)
	w := &CAWatch{Path: path, Changed: func() { changed <- struct{}{} }, every: 10 * time.Millisecond}
	if w.Pool() == nil {
		t.Fatal("no pool from a readable CA")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Start(ctx) }()
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changed:
			t.Fatalf("Changed called %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
	quiet("at the first read")
	write(first, now.Add(-30*time.Second))
	quiet("for the same CA written again")

	write(second, now)
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("a new CA was not reported")
	}
	quiet("twice for one change")
	want := x509.NewCertPool()
	want.AppendCertsFromPEM(second)
	if !w.Pool().Equal(want) {
		t.Error("the pool is not the new CA's")
	}
}
