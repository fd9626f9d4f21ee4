package appliance

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/events"
)

func TestBoxRecordsChanges(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	tb.CreateGroup(ctx, InitiatorGroup{Name: "xen"})
	tb.UpdateGroup(ctx, "xen", GroupUpdate{Add: []string{"iqn.2026-11.org.example:dom0-a"}})
	tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib, Group: "xen"})
	size := int64(2 * mib)
	tb.UpdateLUN(ctx, "vm01", LUNUpdate{Size: &size})
	tb.CreateLUN(ctx, LUNRequest{Name: "BAD", Size: mib}) // refused: not recorded
	tb.DeleteLUN(ctx, "vm01")
	tb.DeleteGroup(ctx, "xen")
	var kinds []events.Kind
	for _, e := range tb.Events().List() {
		if strings.HasPrefix(string(e.Kind), "lun-") || strings.HasPrefix(string(e.Kind), "group-") {
			kinds = append(kinds, e.Kind)
		}
	}
	want := []events.Kind{events.GroupDeleted, events.LUNDeleted, events.LUNUpdated, events.LUNCreated, events.GroupUpdated, events.GroupCreated}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("event kinds, newest first (-want +got):\n%s", diff)
	}
	if msg := tb.Events().List()[2].Message; msg != `LUN vm01 updated: 2M, initiator group xen` {
		t.Errorf("update message %q", msg)
	}
}

// Activate and Deactivate record the box's role.
func TestBoxRecordsItsRole(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if err := tb.Deactivate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tb.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	var kinds []events.Kind
	for _, e := range tb.Events().List() {
		kinds = append(kinds, e.Kind)
	}
	want := []events.Kind{events.ServingStarted, events.ServingStopped, events.ServingStarted}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("event kinds, newest first (-want +got):\n%s", diff)
	}
}
