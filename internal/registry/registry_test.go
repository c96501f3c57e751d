package registry

import (
	"errors"
	"testing"
)

func TestEntries(t *testing.T) {
	type policy struct{ name string }
	broken := errors.New("broken")
	var m Entries[policy]
	m.Set("ok", New(&policy{"ok"}, nil))
	m.Set("nil", New[policy](nil, nil))
	m.Set("broken", New(&policy{"broken"}, broken))
	if !m.Has("nil") || m.Has("absent") {
		t.Error("Has")
	}
	if l, f := m.Counts(); l != 1 || f != 2 {
		t.Errorf("Counts = %d, %d; want 1, 2", l, f)
	}
	get := func(n string) Entry[policy] { e, _ := m.Get(n); return e }
	if !errors.Is(get("nil").Err, ErrNotServed) || get("ok").Failed() || !get("broken").Failed() {
		t.Errorf("entries %v", m)
	}
	if s := m.Served(); len(s) != 2 {
		t.Errorf("Served = %v, want ok and broken", s)
	}
	// Counts follow replacements and deletions.
	m.Set("broken", New(&policy{"fixed"}, nil))
	if old, had := m.Delete("nil"); !had || !old.Failed() {
		t.Errorf("Delete = %v, %v", old, had)
	}
	if _, had := m.Delete("absent"); had {
		t.Error("deleted what was never set")
	}
	if l, f := m.Counts(); l != 2 || f != 0 {
		t.Errorf("Counts after changes = %d, %d; want 2, 0", l, f)
	}
}
