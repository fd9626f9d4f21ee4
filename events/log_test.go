package events

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLogKeepsTheNewestFirst(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(i int) Event {
		return Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: LUNCreated, Message: fmt.Sprint(i)}
	}
	tests := []struct {
		name  string
		size  int
		added int
		want  []int
	}{
		{"empty", 3, 0, nil},
		{"partly full", 3, 2, []int{1, 0}},
		{"full", 3, 3, []int{2, 1, 0}},
		{"wrapped once", 3, 4, []int{3, 2, 1}},
		{"wrapped many times", 3, 11, []int{10, 9, 8}},
		{"size one", 1, 5, []int{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLog(tt.size)
			for i := range tt.added {
				l.Add(at(i))
			}
			want := []Event{}
			for _, i := range tt.want {
				want = append(want, at(i))
			}
			if diff := cmp.Diff(want, l.List()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
	var zero Log
	zero.Add(Event{Kind: "x"})
	if got := zero.List(); len(got) != 1 || got[0].Time.IsZero() || got[0].Time.Location() != time.UTC {
		t.Errorf("zero log: %+v", got)
	}
}

func TestLogIsSafeForConcurrentUse(t *testing.T) {
	l := NewLog(50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				l.Add(Event{Kind: "k", Message: fmt.Sprint(g, i)})
				l.List()
			}
		})
	}
	wg.Wait()
	if n := len(l.List()); n != 50 {
		t.Errorf("%d events kept, want 50", n)
	}
}
