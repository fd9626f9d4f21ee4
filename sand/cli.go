package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui/client"
)

// apiFlags are the flags of every command that talks to a daemon.
type apiFlags struct {
	url, token, tokenFile, output string
}

func addAPIFlags(cmd *cobra.Command, f *apiFlags) {
	cmd.PersistentFlags().StringVar(&f.url, "api", "", "sand API URL (default: $SAND_API, else http://127.0.0.1:<port of listen in sand.yaml>)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "API token (default: $SAND_API_TOKEN, else the one in sand.yaml)")
	cmd.PersistentFlags().StringVar(&f.tokenFile, "token-file", "", "file holding the API token")
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
}

// client builds an API client from flags, env and sand.yaml, in that order.
func (e *env) client(f *apiFlags) (*client.Client, error) {
	if f.output != "text" && f.output != "json" {
		return nil, fmt.Errorf("--output %q is unknown: use text or json", f.output)
	}
	cfg, err := e.loadConfig(nil)
	if err != nil {
		return nil, err
	}
	url := firstNonEmpty(f.url, e.v.GetString("api"))
	if url == "" {
		_, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("derive API address from listen %q: %w (or give --api)", cfg.Listen, err)
		}
		url = "http://" + net.JoinHostPort("127.0.0.1", port)
	}
	token := firstNonEmpty(f.token, e.v.GetString("api_token"))
	if f.tokenFile != "" {
		if token, err = appliance.ReadSecretFile(f.tokenFile); err != nil {
			return nil, fmt.Errorf("read API token: %w", err)
		}
	} else if token == "" {
		if token, err = cfg.Token(); err != nil {
			return nil, fmt.Errorf("read API token: %w", err)
		}
	}
	if token == "" {
		return nil, fmt.Errorf("no API token: give --token, --token-file or SAND_API_TOKEN")
	}
	return client.New(url, token), nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// print writes v as JSON, or calls text for people.
func (e *env) print(f *apiFlags, v any, text func(w *tabwriter.Writer)) error {
	if f.output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	text(w)
	return w.Flush()
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
