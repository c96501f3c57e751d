// Package registry is the bookkeeping every phase's registry shares: each
// object a controller has processed, by name, as an Entry that is a
// compiled policy or a configuration error. The phases differ in what they
// build from the entries (token digests, subject indexes, ordered
// snapshots), not in what an entry is, what counts as loaded or failed, or
// what the readiness check has seen.
package registry

import "errors"

// ErrNotServed is the configuration error of an entry set without a
// policy and without an error of its own.
var ErrNotServed = errors.New("not served: it did not compile")

// Entry is one processed object: its compiled policy, or the
// configuration error of one that did not compile. An entry may have both:
// a broken policy that is still served so that it fails closed (an
// admission policy under its failure policy, a Deny AccessPolicy).
type Entry[P any] struct {
	Policy *P
	Err    error
}

// New is the entry for p and err: a nil p with no err gets ErrNotServed.
func New[P any](p *P, err error) Entry[P] {
	if p == nil && err == nil {
		err = ErrNotServed
	}
	return Entry[P]{Policy: p, Err: err}
}

// Failed reports whether the entry is a configuration error.
func (e Entry[P]) Failed() bool { return e.Err != nil }

// Entries is every processed object of one kind by name, with its counts
// kept as it changes. It is not safe for concurrent use: a registry holds
// it under its own lock. The zero value is empty and ready to use.
type Entries[P any] struct {
	m      map[string]Entry[P]
	failed int
}

// Set records name's entry and returns the one it replaces.
func (s *Entries[P]) Set(name string, e Entry[P]) (old Entry[P], had bool) {
	if s.m == nil {
		s.m = map[string]Entry[P]{}
	}
	old, had = s.m[name]
	if had && old.Failed() {
		s.failed--
	}
	if e.Failed() {
		s.failed++
	}
	s.m[name] = e
	return old, had
}

// Delete forgets name and returns the entry it had.
func (s *Entries[P]) Delete(name string) (old Entry[P], had bool) {
	old, had = s.m[name]
	if !had {
		return old, false
	}
	if old.Failed() {
		s.failed--
	}
	delete(s.m, name)
	return old, true
}

// Get returns name's entry.
func (s *Entries[P]) Get(name string) (Entry[P], bool) {
	e, ok := s.m[name]
	return e, ok
}

// Has reports whether name has been processed, served or not: the
// readiness check waits for every object seen at start-up.
func (s *Entries[P]) Has(name string) bool {
	_, ok := s.m[name]
	return ok
}

// Counts reports how many entries compiled and how many are
// configuration errors.
func (s *Entries[P]) Counts() (loaded, failed int) { return len(s.m) - s.failed, s.failed }

// Served returns the policies of the entries that have one, broken ones
// included, in no particular order.
func (s *Entries[P]) Served() []*P {
	out := make([]*P, 0, len(s.m))
	for _, e := range s.m {
		if e.Policy != nil {
			out = append(out, e.Policy)
		}
	}
	return out
}

// All calls f for every entry, in no particular order.
func (s *Entries[P]) All(f func(name string, e Entry[P])) {
	for name, e := range s.m {
		f(name, e)
	}
}
