package appliance

import (
	"strings"
	"testing"
)

func TestMonitorTokenConfig(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Portal = "10.0.0.50"
		c.APIToken = "api-token-0123456789"
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("no monitoring token: %v", err)
	}
	for _, tt := range []struct {
		name      string
		token     string
		file      string
		wantError string
	}{
		{"inline", "monitor-0123456789abcdef", "", ""},
		{"file", "", "/etc/sand/monitor-token", ""},
		{"both", "monitor-0123456789abcdef", "/etc/sand/monitor-token", "both monitor_token and monitor_token_file"},
		{"relative file", "", "monitor-token", "must be an absolute path"},
		{"short", "short", "", "use at least 16"},
		{"same as the API token", "api-token-0123456789", "", "a token of its own"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.MonitorToken, c.MonitorTokenFile = tt.token, tt.file
			err := c.Validate()
			if tt.wantError == "" && err != nil {
				t.Errorf("Validate() = %v", err)
			}
			if tt.wantError != "" && (err == nil || !strings.Contains(err.Error(), tt.wantError)) {
				t.Errorf("Validate() = %v, want an error saying %q", err, tt.wantError)
			}
		})
	}
}
