package devenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// backendDialTimeout bounds a connection attempt to one replica on
// loopback: a live one answers at once.
const backendDialTimeout = time.Second

// front plays the webhook Service of a cluster: the API server reaches one
// loopback address, and each connection goes to a replica that accepts it,
// the first listed first. So when a replica stops, the others keep
// serving the webhooks, as behind a Service's endpoints. TLS passes
// through: every replica serves the same certificate.
type front struct {
	l net.Listener

	mu       sync.Mutex
	backends []string
	// open are the relayed connections, so a change of backends can cut
	// them: the API server's kept-alive connections then reconnect.
	open map[net.Conn]bool

	// delay holds each new turn of a caller (see copyDelayed) for this
	// long (nanoseconds).
	delay atomic.Int64
}

// requestGap is how long a caller is quiet before what it sends next
// counts as a new request even without an answer between: longer than
// the gaps within a TLS handshake or a request on loopback.
const requestGap = time.Millisecond

func (f *front) setDelay(d time.Duration) { f.delay.Store(int64(d)) }

func newFront(addr string) (*front, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &front{l: l}
	go f.serve()
	return f, nil
}

func (f *front) add(backend string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backends = append(f.backends, backend)
}

func (f *front) remove(backend string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.backends {
		if b == backend {
			f.backends = append(f.backends[:i:i], f.backends[i+1:]...)
			return
		}
	}
}

func (f *front) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return // closed
		}
		go f.relay(c)
	}
}

// relay copies one connection to the first backend that accepts it.
func (f *front) relay(c net.Conn) {
	defer c.Close()
	f.mu.Lock()
	backends := append([]string(nil), f.backends...)
	if f.open == nil {
		f.open = map[net.Conn]bool{}
	}
	f.open[c] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.open, c)
		f.mu.Unlock()
	}()
	for _, b := range backends {
		bc, err := net.DialTimeout("tcp", b, backendDialTimeout)
		if err != nil {
			continue
		}
		defer bc.Close()
		done := make(chan struct{}, 2)
		// answered is set when the backend has sent something since the
		// caller last did: the caller's next bytes are a new turn.
		var answered atomic.Bool
		answered.Store(true) // a new connection's first bytes are one
		go func() { f.copyDelayed(bc, c, &answered); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, marking{bc, &answered}); done <- struct{}{} }()
		<-done // either side closed: close both
		return
	}
}

// copyDelayed copies the caller's bytes to the backend, holding each of
// the caller's turns for the front's delay: its first bytes after the
// backend has sent some, or after a quiet spell (requestGap). An HTTP/1.1
// caller (the API server) sends a request only once the previous answer
// has come, so each request is held once, however soon after that answer
// it is written; so are the caller's flights of a TLS handshake, as on a
// slow network.
func (f *front) copyDelayed(dst io.Writer, src io.Reader, answered *atomic.Bool) {
	buf := make([]byte, 32<<10)
	var last int64 // when the caller's bytes were last passed on
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now().UnixNano()
			// A new turn, or bytes after a quiet spell: each alone let a
			// request through undelayed in a run of the fault suite.
			turn := answered.Swap(false)
			if d := f.delay.Load(); d > 0 && (turn || now-last >= int64(requestGap)) {
				time.Sleep(time.Duration(d))
			}
			last = time.Now().UnixNano()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// marking notes in answered that bytes were read from r.
type marking struct {
	r        io.Reader
	answered *atomic.Bool
}

func (m marking) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.answered.Store(true)
	}
	return n, err
}

func (f *front) close() error { return f.l.Close() }

// route replaces the backends and cuts every relayed connection, and
// returns the backends it had.
func (f *front) route(backends []string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.backends
	f.backends = backends
	f.cutLocked()
	return old
}

// cut closes every relayed connection, keeping the backends, and returns
// how many it closed.
func (f *front) cut() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cutLocked()
}

func (f *front) cutLocked() int {
	for c := range f.open {
		_ = c.Close()
	}
	return len(f.open)
}
