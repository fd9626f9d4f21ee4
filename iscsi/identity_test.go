package iscsi

import (
	"strings"
	"testing"
)

func TestValidateIQN(t *testing.T) {
	// 223 bytes exactly: the RFC 3720 limit.
	longest := "iqn.2026-11.org.example:" + strings.Repeat("a", maxIQNLen-len("iqn.2026-11.org.example:"))
	tests := []struct {
		name    string
		iqn     string
		wantErr string // "" means valid
	}{
		{name: "target with name", iqn: "iqn.2026-11.org.example:dom0-a"},
		{name: "no unique string", iqn: "iqn.2001-04.com.example"},
		{name: "dots and colons in name", iqn: "iqn.2001-04.com.example:storage.disk2.sys1.xyz:a"},
		{name: "open-iscsi default", iqn: "iqn.1994-05.com.redhat:185ce16b55ad"},
		{name: "digits in domain", iqn: "iqn.2008-03.lan.example.san1:xen-web01"},
		{name: "223 bytes", iqn: longest},
		{name: "empty", iqn: "", wantErr: "IQN is empty"},
		{name: "too long", iqn: longest + "b", wantErr: "224 bytes long"},
		{name: "upper case name", iqn: "iqn.2026-11.org.example:Dom0-A", wantErr: "upper-case"},
		{name: "upper case prefix", iqn: "IQN.2026-11.org.example:dom0", wantErr: "upper-case"},
		{name: "space", iqn: "iqn.2026-11.org.example:dom0 a", wantErr: "malformed"},
		{name: "tab", iqn: "iqn.2026-11.org.example:dom0\ta", wantErr: "malformed"},
		{name: "missing date", iqn: "iqn.org.example:dom0", wantErr: "malformed"},
		{name: "year only", iqn: "iqn.2026.org.example:dom0", wantErr: "malformed"},
		{name: "month 13", iqn: "iqn.2026-13.org.example:dom0", wantErr: "malformed"},
		{name: "month 00", iqn: "iqn.2026-00.org.example:dom0", wantErr: "malformed"},
		{name: "no domain", iqn: "iqn.2026-11:dom0", wantErr: "malformed"},
		{name: "label ends with dash", iqn: "iqn.2026-11.org.example-:dom0", wantErr: "malformed"},
		{name: "empty label", iqn: "iqn.2026-11.org..example:dom0", wantErr: "malformed"},
		{name: "empty unique string", iqn: "iqn.2026-11.org.example:", wantErr: "malformed"},
		{name: "underscore", iqn: "iqn.2026-11.org.example:dom0_a", wantErr: "malformed"},
		{name: "eui form", iqn: "eui.02004567a425678d", wantErr: "malformed"},
		{name: "naa form", iqn: "naa.52004567ba64678d", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateIQN(tt.iqn), tt.wantErr)
		})
	}
}

func TestCHAPValidate(t *testing.T) {
	tests := []struct {
		name    string
		chap    CHAP
		wantErr string
	}{
		{name: "secret 11", chap: CHAP{User: "dom0", Secret: strings.Repeat("s", 11)}, wantErr: "11 characters long: it must be 12 to 16"},
		{name: "secret 12", chap: CHAP{User: "dom0", Secret: strings.Repeat("s", 12)}},
		{name: "secret 16", chap: CHAP{User: "dom0", Secret: strings.Repeat("s", 16)}},
		{name: "secret 17", chap: CHAP{User: "dom0", Secret: strings.Repeat("s", 17)}, wantErr: "17 characters long: it must be 12 to 16"},
		{name: "punctuation", chap: CHAP{User: "iqn.1994-05.com.redhat:x", Secret: "p@ss#w0rd!=,;x"}},
		{name: "empty user", chap: CHAP{Secret: "secretsecret"}, wantErr: "user is empty"},
		{name: "user with space", chap: CHAP{User: "dom 0", Secret: "secretsecret"}, wantErr: "spaces or control"},
		{name: "user too long", chap: CHAP{User: strings.Repeat("u", 256), Secret: "secretsecret"}, wantErr: "256 bytes long"},
		{name: "secret with space", chap: CHAP{User: "dom0", Secret: "secret secret"}, wantErr: "spaces or control"},
		{name: "secret not ascii", chap: CHAP{User: "dom0", Secret: "sécretsecret"}, wantErr: "spaces or control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.chap.Validate(), tt.wantErr)
		})
	}
}

func TestNAAFromSerial(t *testing.T) {
	tests := []struct {
		name   string
		serial string
		want   string
	}{
		{name: "16 hex digits", serial: "0123456789abcdef", want: "6001405" + "0123456789abcdef" + "000000000"},
		{name: "upper-case hex", serial: "0123456789ABCDEF", want: "6001405" + "0123456789abcdef" + "000000000"},
		{name: "not hex", serial: "vm01-disk", want: "6001405" + "01d" + strings.Repeat("0", 22)},
		{name: "no hex digit at all", serial: "xyz", want: "6001405" + strings.Repeat("0", 25)},
		{name: "more than 25 hex digits", serial: strings.Repeat("f", 30), want: "6001405" + strings.Repeat("f", 25)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NAAFromSerial(tt.serial)
			if got != tt.want {
				t.Errorf("NAAFromSerial(%q) = %s, want %s", tt.serial, got, tt.want)
			}
			if err := validateNAAFormat(got); err != nil {
				t.Errorf("NAAFromSerial(%q) gives a malformed NAA: %v", tt.serial, err)
			}
		})
	}
}

func TestValidateSerial(t *testing.T) {
	tests := []struct {
		name    string
		serial  string
		wantErr string
	}{
		{name: "16 hex digits", serial: "0123456789abcdef"},
		{name: "short", serial: "a"},
		{name: "punctuation", serial: "DB01-0001_x.y"},
		{name: "empty", serial: "", wantErr: "1 to 16 characters"},
		{name: "17 characters", serial: strings.Repeat("a", 17), wantErr: "1 to 16 characters"},
		{name: "space", serial: "db01 0001", wantErr: "without spaces"},
		{name: "comma", serial: "db01,0001", wantErr: "','"},
		{name: "equals", serial: "db01=0001", wantErr: "'='"},
		{name: "hash", serial: "db01#0001", wantErr: "'#'"},
		{name: "control", serial: "db01\x000001", wantErr: "printable"},
		{name: "not ascii", serial: "dé01", wantErr: "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateSerial(tt.serial), tt.wantErr)
		})
	}
}

func TestNewSerial(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		s, err := NewSerial()
		if err != nil {
			t.Fatalf("NewSerial: %v", err)
		}
		if len(s) != SerialLen || strings.Trim(s, "0123456789abcdef") != "" {
			t.Fatalf("NewSerial = %q, want %d lower-case hex digits", s, SerialLen)
		}
		if err := ValidateSerial(s); err != nil {
			t.Fatalf("NewSerial = %q, which ValidateSerial rejects: %v", s, err)
		}
		if seen[s] {
			t.Fatalf("NewSerial repeated %q", s)
		}
		seen[s] = true
	}
}

// checkErr fails unless err is nil when want is empty, or mentions want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one mentioning %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not mention %q", err, want)
	}
}
