package appliance

import (
	"fmt"
	"os"
	"strings"
)

// ReadSecretFile reads a token, key or password file, trimming the
// newline an editor leaves.
func ReadSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// Token is the configured API token, from the file when one is named.
func (c Config) Token() (string, error) {
	if c.APITokenFile != "" {
		return ReadSecretFile(c.APITokenFile)
	}
	return c.APIToken, nil
}

// Monitor is the configured monitoring token ("" for none), from the file
// when one is named.
func (c Config) Monitor() (string, error) {
	if c.MonitorTokenFile != "" {
		return ReadSecretFile(c.MonitorTokenFile)
	}
	return c.MonitorToken, nil
}
