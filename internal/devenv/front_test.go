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
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
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
	f, err := newFront("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	f.add(backend.Addr().String())
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
