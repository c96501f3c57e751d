package admission

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A lazy deadline is context.WithDeadline to whoever waits on it: done at
// the deadline, with its error and cause, and so is a context derived
// from it (as CEL derives one in ContextEval). Until something waits, no
// timer runs, and Err still reports the deadline by the clock.
func TestLazyDeadlineIsWithDeadline(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	d := time.Now().Add(50 * time.Millisecond)
	ctx, cancel := withLazyDeadline(parent, d)
	defer cancel()
	lazy := ctx.(*lazyDeadline)
	if got, ok := ctx.Deadline(); !ok || !got.Equal(d) {
		t.Errorf("Deadline() = %v, %v; want %v", got, ok, d)
	}
	type key struct{}
	valued, cancelValued := withLazyDeadline(context.WithValue(parent, key{}, "v"), d)
	defer cancelValued()
	if valued.Value(key{}) != "v" || ctx.Err() != nil {
		t.Errorf("Value = %v, Err = %v", valued.Value(key{}), ctx.Err())
	}
	if started, _ := lazy.current(); started != nil {
		t.Fatal("a timer started before anything waited")
	}
	derived, cancelDerived := context.WithCancel(ctx)
	defer cancelDerived()
	select {
	case <-derived.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a context derived from the lazy deadline is not done after it")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(derived), context.DeadlineExceeded) || !errors.Is(derived.Err(), context.DeadlineExceeded) {
		t.Errorf("after the deadline: Err %v, derived Err %v, derived cause %v", ctx.Err(), derived.Err(), context.Cause(derived))
	}

	// Past its deadline with nothing waiting: the error by the clock, and
	// Done, when asked for then, is already closed.
	late, cancelLate := withLazyDeadline(parent, time.Now().Add(-time.Millisecond))
	defer cancelLate()
	if !errors.Is(late.Err(), context.DeadlineExceeded) {
		t.Errorf("past the deadline, not started: Err %v", late.Err())
	}
	select {
	case <-late.Done():
	default:
		t.Error("past the deadline: Done is not closed")
	}

	// An earlier deadline of the parent is the one reported.
	early, cancelEarly := context.WithDeadline(parent, time.Now().Add(time.Minute))
	defer cancelEarly()
	both, cancelBoth := withLazyDeadline(early, time.Now().Add(time.Hour))
	defer cancelBoth()
	if pd, _ := early.Deadline(); func() bool { got, _ := both.Deadline(); return !got.Equal(pd) }() {
		t.Error("the parent's earlier deadline is not the one reported")
	}
}

// Cancelled, before or after something waited, or through its parent: Err
// is Canceled and Done closed, as with context.WithDeadline.
func TestLazyDeadlineCancel(t *testing.T) {
	far := time.Now().Add(time.Hour)
	check := func(name string, ctx context.Context) {
		t.Helper()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not done", name)
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("%s: Err %v", name, ctx.Err())
		}
	}
	before, cancel := withLazyDeadline(context.Background(), far)
	cancel()
	if !errors.Is(before.Err(), context.Canceled) {
		t.Errorf("cancelled before waiting: Err %v", before.Err())
	}
	check("cancelled before waiting", before)

	after, cancel := withLazyDeadline(context.Background(), far)
	done := after.Done()
	cancel()
	<-done
	check("cancelled while waited on", after)

	parent, cancelParent := context.WithCancel(context.Background())
	child, cancel := withLazyDeadline(parent, far)
	defer cancel()
	cancelParent()
	if !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("parent cancelled, not started: Err %v", child.Err())
	}
	check("parent cancelled", child)
}

// Waited on, read and cancelled from several goroutines at once; run with
// -race.
func TestLazyDeadlineConcurrently(t *testing.T) {
	ctx, cancel := withLazyDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 7 {
				cancel()
			}
			_ = ctx.Err()
			_ = ctx.Value(struct{}{})
			<-ctx.Done()
		}()
	}
	wg.Wait()
	if ctx.Err() == nil {
		t.Error("done with no error")
	}
}
