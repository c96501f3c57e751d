package reviewhttp

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A client that sends its headers and then stalls in the body is cut off
// at the read deadline, not held for as long as it likes.
func TestSlowBodyIsCutOff(t *testing.T) {
	readTimeout = 200 * time.Millisecond
	t.Cleanup(func() { readTimeout = BodyReadTimeout })
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, code, err := ReadBody(rw, r, 1<<20, "TokenReview")
		if err != nil {
			http.Error(rw, err.Error(), code)
			return
		}
		_, _ = rw.Write([]byte("read"))
	}))
	defer srv.Close()

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Promise 100 bytes, send 2, stall.
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}")
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400 (or a closed connection) for a stalled body", resp.StatusCode)
		}
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("the server held a stalled body for %s", waited)
	}
}
