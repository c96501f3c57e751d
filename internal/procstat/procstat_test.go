package procstat

import (
	"os"
	"testing"
	"time"
)

func TestSelf(t *testing.T) {
	// Burn some CPU, so that the reading is above zero.
	deadline := time.Now().Add(50 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	cpu, err := CPU(os.Getpid())
	if err != nil || cpu <= 0 || cpu > time.Hour {
		t.Errorf("CPU = %v, %v", cpu, err)
	}
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 || rss > 1<<36 {
		t.Errorf("RSS = %d, %v", rss, err)
	}
	if _, err := CPU(-1); err == nil {
		t.Error("CPU of no process: no error")
	}
}
