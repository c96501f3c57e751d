package devenv

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// TestFrontDelaysEveryRequest: with a delay set, each request of a
// kept-alive connection is held once, also one written the moment the
// previous answer arrived (as the API server writes its next call).
func TestFrontDelaysEveryRequest(t *testing.T) {
	backend := pongServer(t)
	f, err := newFront("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	f.add(backend)
	const delay = 50 * time.Millisecond
	f.setDelay(delay)

	c, err := net.Dial("tcp", f.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i := 0; i < 5; i++ {
		start := time.Now()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < delay {
			t.Errorf("request %d answered in %v, under the front's delay of %v", i, took, delay)
		}
	}
	// Off again: not held.
	f.setDelay(0)
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= delay {
		t.Errorf("without a delay the request took %v", took)
	}
}

// TestFrontCut: cut closes a kept-alive connection, and the next one is
// relayed to the same backend.
func TestFrontCut(t *testing.T) {
	f, err := newFront("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	f.add(pongServer(t))
	ping := func(c net.Conn) error {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		_, err := bufio.NewReader(c).ReadString('\n')
		return err
	}
	c, err := net.Dial("tcp", f.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := ping(c); err != nil {
		t.Fatal(err)
	}
	if n := f.cut(); n != 1 {
		t.Errorf("cut %d connections, want 1", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the connection is still open after the cut")
	}
	c2, err := net.Dial("tcp", f.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := ping(c2); err != nil {
		t.Fatalf("a connection after the cut: %v", err)
	}
}

// pongServer answers each line with "pong" until the test ends, and
// returns its address.
func pongServer(t *testing.T) string {
	t.Helper()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := c.Write([]byte("pong\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return backend.Addr().String()
}
