package admission

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is a context with a deadline whose timer starts only when
// something waits for the context to be done (Done, or a context derived
// from it): a context.WithDeadline that costs nothing until then. Most
// reviews are decided without anything waiting (a policy that sets labels,
// a CEL expression without a comprehension, where alone CEL looks), and a
// timer per call, set and stopped, is a twentieth of a review's round trip
// over loopback. Err reports the deadline without the timer, by the clock.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	started  context.Context // the timer's context, once something waited
	stop     context.CancelFunc
	canceled bool
}

// withLazyDeadline is context.WithDeadline(parent, d), its timer started
// when first waited on.
func withLazyDeadline(parent context.Context, d time.Time) (context.Context, context.CancelFunc) {
	c := &lazyDeadline{parent: parent, deadline: d}
	return c, c.cancel
}

// start is the timer's context, started on the first call.
func (c *lazyDeadline) start() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started == nil {
		c.started, c.stop = context.WithDeadline(c.parent, c.deadline)
		if c.canceled {
			c.stop()
		}
	}
	return c.started
}

// current is the timer's context if it was started, and whether the
// context was canceled.
func (c *lazyDeadline) current() (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started, c.canceled
}

func (c *lazyDeadline) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.canceled = true
	if c.stop != nil {
		c.stop()
	}
}

func (c *lazyDeadline) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *lazyDeadline) Done() <-chan struct{} { return c.start().Done() }

// Err is the started timer's error; before it started, the parent's, or
// Canceled once canceled, or DeadlineExceeded from the deadline on: what
// the timer's context would report, which a later Done then agrees with.
func (c *lazyDeadline) Err() error {
	started, canceled := c.current()
	switch {
	case started != nil:
		return started.Err()
	case canceled:
		return context.Canceled
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value is the timer's context's once started (so that contexts derived
// from it, and context.Cause, find its cancelation), the parent's before.
func (c *lazyDeadline) Value(key any) any {
	if started, _ := c.current(); started != nil {
		return started.Value(key)
	}
	return c.parent.Value(key)
}
