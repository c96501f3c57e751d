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

	// delay holds what a caller sends after a pause (a new request, or a
	// new connection's first bytes) for this long (nanoseconds).
	delay atomic.Int64
}

// requestGap is how long a connection is quiet before what its caller
// sends next counts as a new request: longer than the gaps within a TLS
// handshake or a request on loopback.
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
		var last atomic.Int64 // when bytes last went either way
		last.Store(time.Now().UnixNano() - int64(requestGap))
		go func() { f.copyDelayed(bc, c, &last); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, stamped{bc, &last}); done <- struct{}{} }()
		<-done // either side closed: close both
		return
	}
}

// copyDelayed copies the caller's bytes to the backend, holding each
// burst that follows a quiet connection for the front's delay.
func (f *front) copyDelayed(dst io.Writer, src io.Reader, last *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now().UnixNano()
			if d := f.delay.Load(); d > 0 && now-last.Load() >= int64(requestGap) {
				time.Sleep(time.Duration(d))
			}
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stamped records when bytes were last read from r.
type stamped struct {
	r    io.Reader
	last *atomic.Int64
}

func (s stamped) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.last.Store(time.Now().UnixNano())
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
	for c := range f.open {
		_ = c.Close()
	}
	return old
}
