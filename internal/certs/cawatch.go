package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// CARecheck is how often a CAWatch looks at its file again: the CA changes
// rarely (it is kept across serving-certificate renewals), and a new one
// is picked up within this time without a restart.
const CARecheck = 10 * time.Second

// CAWatch is a PEM CA file, read again when it changes: its modification
// time is looked at no more than every CARecheck, and the file read when
// that moves. A mounted Secret (cert-manager's ca.crt) changes by a new
// file behind the same name, so its time moves too.
//
// Pool serves the TLS handshakes that verify callers against it; Start
// looks every CARecheck whether anything asks or not, so that Changed
// follows a new CA within that time (the API server keeps its connections
// open: handshakes are rare).
type CAWatch struct {
	// Path is the PEM file.
	Path string
	// Changed, when set, is called when a read finds other contents than
	// the read before; not at the first. It must not block.
	Changed func()

	state atomic.Pointer[caState]
	// every is how often Start looks; CARecheck when zero.
	every time.Duration
}

type caState struct {
	data      []byte
	pool      *x509.CertPool
	modTime   time.Time
	checkedAt time.Time
}

// Pool returns the CA pool, looking at the file at most every CARecheck;
// nil when it cannot be read or holds no certificate.
func (w *CAWatch) Pool() *x509.CertPool {
	if st := w.state.Load(); st != nil && time.Since(st.checkedAt) < CARecheck {
		return st.pool
	}
	return w.look()
}

// look reads the file if its modification time moved since the last read,
// and calls Changed when its contents did.
func (w *CAWatch) look() *x509.CertPool {
	now := time.Now()
	st := w.state.Load()
	fi, err := os.Stat(w.Path)
	if err != nil {
		return nil
	}
	if st != nil && fi.ModTime().Equal(st.modTime) {
		w.state.CompareAndSwap(st, &caState{data: st.data, pool: st.pool, modTime: st.modTime, checkedAt: now})
		return st.pool
	}
	data, err := os.ReadFile(w.Path)
	if err != nil {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil
	}
	// Of concurrent readers of one change, the one that stores it
	// reports it.
	if w.state.CompareAndSwap(st, &caState{data: data, pool: pool, modTime: fi.ModTime(), checkedAt: now}) &&
		st != nil && !bytes.Equal(st.data, data) && w.Changed != nil {
		w.Changed()
	}
	return pool
}

// Start reads the file, then looks at it every CARecheck until ctx is
// done.
func (w *CAWatch) Start(ctx context.Context) error {
	every := w.every
	if every == 0 {
		every = CARecheck
	}
	wait.UntilWithContext(ctx, func(context.Context) { w.look() }, every)
	return nil
}

// NeedLeaderElection: every replica verifies its callers, so every
// replica looks.
func (w *CAWatch) NeedLeaderElection() bool { return false }
