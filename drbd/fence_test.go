package drbd

import "testing"

func TestFenceOutcomes(t *testing.T) {
	tests := []struct {
		o    FenceOutcome
		name string
		exit int
	}{
		{FenceUnreachable, "unreachable", 1},
		{FenceOutdated, "outdated", 4},
		{FenceRefused, "refused", 6},
		{FenceDead, "dead", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := tt.o.ExitCode(); got != tt.exit {
				t.Errorf("ExitCode() = %d, want %d", got, tt.exit)
			}
			back, err := ParseFenceOutcome(tt.name)
			if err != nil || back != tt.o {
				t.Errorf("ParseFenceOutcome(%q) = %v, %v", tt.name, back, err)
			}
			if tt.exit == 5 {
				t.Error("exit 5 would make DRBD resume I/O past an unconfirmed peer")
			}
		})
	}
	if _, err := ParseFenceOutcome("maybe"); err == nil {
		t.Error("ParseFenceOutcome accepted an unknown name")
	}
	if got := FenceOutcome(42).ExitCode(); got != 1 {
		t.Errorf("unknown outcome exits %d, want 1 (I/O stays frozen)", got)
	}
}
