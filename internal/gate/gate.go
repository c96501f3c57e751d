package gate

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// Leader is a leader-only runnable; see the package comment.
type Leader struct {
	client  client.Client
	elected chan struct{}
	replays []replay
}

type replay struct {
	list func() client.ObjectList
	ch   chan event.GenericEvent
}

// NewLeader returns a Leader that lists objects with c. Add it to the
// manager after the controllers that use its sources.
func NewLeader(c client.Client) *Leader {
	return &Leader{client: c, elected: make(chan struct{})}
}

// Source returns a source that receives every object of the list's kind
// when this replica is elected. Call before the manager starts.
func (l *Leader) Source(newList func() client.ObjectList) source.Source {
	ch := make(chan event.GenericEvent)
	l.replays = append(l.replays, replay{list: newList, ch: ch})
	return source.Channel(ch, &handler.EnqueueRequestForObject{})
}

// IsLeader reports whether this replica may write to the API.
func (l *Leader) IsLeader() bool {
	select {
	case <-l.elected:
		return true
	default:
		return false
	}
}

// NeedLeaderElection makes Start run on the leader only.
func (l *Leader) NeedLeaderElection() bool { return true }

// WriteStatus patches obj's status from before, its state as read, and only
// when changed and on the leader: one write per reconcile. A merge patch
// does not conflict with a concurrent reconcile of the same object (the
// leader's replay and a watch event, at start-up).
func (l *Leader) WriteStatus(ctx context.Context, c client.Client, obj, before client.Object, changed bool) error {
	if !changed || !l.IsLeader() {
		return nil
	}
	return c.Status().Patch(ctx, obj, client.MergeFrom(before))
}

// Start runs once this replica is elected.
func (l *Leader) Start(ctx context.Context) error {
	close(l.elected)
	for _, r := range l.replays {
		list := r.list()
		if err := l.client.List(ctx, list); err != nil {
			return fmt.Errorf("listing %T after election: %w", list, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, it := range items {
			obj, ok := it.(client.Object)
			if !ok {
				continue
			}
			select {
			case r.ch <- event.GenericEvent{Object: obj}:
			case <-ctx.Done():
				return nil
			}
		}
	}
	<-ctx.Done()
	return nil
}

// Ready is an every-replica runnable; see the package comment.
type Ready struct {
	// Name of the phase, for the log.
	Name    string
	client  client.Client
	cache   interface{ WaitForCacheSync(context.Context) bool }
	checks  []check
	onReady func()
}

type check struct {
	list func() client.ObjectList
	has  func(name string) bool
}

// NewReady returns a Ready gate that calls onReady once.
func NewReady(name string, c client.Client, cache interface{ WaitForCacheSync(context.Context) bool }, onReady func()) *Ready {
	return &Ready{Name: name, client: c, cache: cache, onReady: onReady}
}

// Track waits, at start, for every object of the list's kind to be seen by has.
func (r *Ready) Track(newList func() client.ObjectList, has func(name string) bool) {
	r.checks = append(r.checks, check{list: newList, has: has})
}

// Poll is how often the gate looks: short, since the replica is not ready
// until it passes.
const Poll = 50 * time.Millisecond

// NeedLeaderElection: every replica serves, so every replica gets ready.
func (r *Ready) NeedLeaderElection() bool { return false }

// Start waits for the caches, lists what exists, and waits until all of it
// has been compiled or is gone. An object deleted since the list is never
// compiled: its reconciler, seeing NotFound, forgets it, so has stays
// false. The gate therefore reads each pending object again from the
// cache and drops one that no longer exists, whichever phase it belongs
// to; the snapshot then holds everything that still does.
func (r *Ready) Start(ctx context.Context) error {
	if !r.cache.WaitForCacheSync(ctx) {
		return nil
	}
	type pending struct {
		objs []client.Object
		has  func(string) bool
	}
	var want []pending
	total := 0
	for _, c := range r.checks {
		list := c.list()
		if err := r.client.List(ctx, list); err != nil {
			return fmt.Errorf("%s readiness: listing %T: %w", r.Name, list, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		p := pending{has: c.has}
		for _, it := range items {
			if o, ok := it.(client.Object); ok {
				p.objs = append(p.objs, o)
			}
		}
		total += len(p.objs)
		want = append(want, p)
	}
	gone := 0
	t := time.NewTicker(Poll)
	defer t.Stop()
	for {
		done := true
		for i := range want {
			p := &want[i]
			kept := p.objs[:0]
			for _, o := range p.objs {
				if p.has(o.GetName()) {
					continue
				}
				deleted, err := r.deleted(ctx, o)
				if err != nil {
					return err
				}
				if deleted {
					gone++
					continue
				}
				kept = append(kept, o)
			}
			p.objs = kept
			if len(kept) > 0 {
				done = false
			}
		}
		if done {
			r.onReady()
			log.FromContext(ctx).WithName(r.Name).Info("snapshot ready", "objects", total-gone, "deletedWhileLoading", gone)
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// deleted reports whether o, listed at start, is no longer in the cache.
// It reads into a copy: the listed object only names what to read.
func (r *Ready) deleted(ctx context.Context, o client.Object) (bool, error) {
	cur, ok := o.DeepCopyObject().(client.Object)
	if !ok {
		return false, nil
	}
	switch err := r.client.Get(ctx, client.ObjectKeyFromObject(o), cur); {
	case err == nil:
		return false, nil
	case apierrors.IsNotFound(err):
		return true, nil
	case ctx.Err() != nil:
		return false, nil
	default:
		return false, fmt.Errorf("%s readiness: reading %s: %w", r.Name, o.GetName(), err)
	}
}
