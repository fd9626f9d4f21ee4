package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui/client"
)

// apiFlags are the flags of every command that talks to a daemon.
type apiFlags struct {
	url, token, tokenFile, output   string
	caFile, fingerprint, knownHosts string
}

func addAPIFlags(cmd *cobra.Command, f *apiFlags) {
	cmd.PersistentFlags().StringVar(&f.url, "api", "", "sand API URL, https://HOST:PORT (default: $SAND_API, else this box's own API from sand.yaml)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "API token (default: $SAND_API_TOKEN, else the one in sand.yaml)")
	cmd.PersistentFlags().StringVar(&f.tokenFile, "token-file", "", "file holding the API token")
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	cmd.PersistentFlags().StringVar(&f.fingerprint, "trust-fingerprint", "", "trust the server's certificate with this SHA-256 fingerprint and remember it (default: $SAND_TRUST_FINGERPRINT)")
	cmd.PersistentFlags().StringVar(&f.caFile, "ca-file", "", "trust the CAs in this PEM file instead, checking names as browsers do (default: $SAND_CA_FILE)")
	cmd.PersistentFlags().StringVar(&f.knownHosts, "known-hosts", "", "file of trusted certificates (default: $SAND_KNOWN_HOSTS, else ~/.config/sand/known_hosts)")
}

// client builds an API client from flags, env and sand.yaml, in that order,
// trusting the server's certificate as client.ResolveTrust decides: the
// box's own certificate file when it talks to its own box (DRBD's handlers
// do), else a CA file, a fingerprint given, known_hosts, or the admin's
// answer.
func (e *env) client(f *apiFlags) (*client.Client, error) {
	if f.output != "text" && f.output != "json" {
		return nil, fmt.Errorf("--output %q is unknown: use text or json", f.output)
	}
	cfg, err := e.loadConfig(nil)
	if err != nil {
		return nil, err
	}
	raw := firstNonEmpty(f.url, e.v.GetString("api"))
	local := ""
	if raw == "" {
		port, err := cfg.ListenPort()
		if err != nil {
			return nil, fmt.Errorf("derive API address: %w (or give --api)", err)
		}
		host, _, _ := net.SplitHostPort(cfg.Listen)
		if a, err := netip.ParseAddr(host); err != nil || a.IsUnspecified() {
			host = "127.0.0.1"
		}
		raw, local = "https://"+net.JoinHostPort(host, port), cfg.TLS.CertFile
	}
	base, addr, err := client.APIURL(raw)
	if err != nil {
		return nil, err
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
	o := client.TrustOptions{
		Addr: addr, LocalCert: local,
		CAFile:      firstNonEmpty(f.caFile, e.v.GetString("ca_file")),
		Fingerprint: firstNonEmpty(f.fingerprint, e.v.GetString("trust_fingerprint")),
		KnownHosts:  firstNonEmpty(f.knownHosts, e.v.GetString("known_hosts")),
	}
	if o.KnownHosts == "" {
		// DRBD's handlers may run without a home: they trust the box's own
		// certificate file and need no known_hosts.
		if o.KnownHosts, err = client.DefaultKnownHostsPath(); err != nil && local == "" {
			return nil, err
		}
	}
	if e.interactive {
		o.Ask = client.Prompt(e.stdin, e.stderr, o.KnownHosts)
	}
	trust, err := client.ResolveTrust(e.ctx, o)
	if err != nil {
		return nil, err
	}
	return client.NewTrusted(base, token, trust)
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
