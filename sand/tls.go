package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui/cert"
)

// tlsConfigKeys are sand.yaml's TLS keys with their defaults (configKeys'
// kin, so SAND_TLS_CERT_FILE and the like reach them).
func tlsConfigKeys() map[string]any {
	d := appliance.DefaultConfig()
	return map[string]any{"tls_cert_file": d.TLS.CertFile, "tls_key_file": d.TLS.KeyFile, "http_redirect": d.TLS.HTTPRedirect}
}

// tlsView is what the API shows of the certificates.
type tlsView = cert.View

// isTerminal reports whether f is a terminal, where the CLI may ask.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// tlsCmd shows and replaces the API's certificates.
func tlsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "The HTTPS certificates of the API and web UI: show, install your own, fingerprint of a file",
	}
	sf := &apiFlags{}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the box's certificate and, in a pair, the VIP's",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(sf)
			if err != nil {
				return err
			}
			v, err := c.TLS(cmd.Context())
			if err != nil {
				return fmt.Errorf("read the certificates: %w", err)
			}
			return e.print(sf, v, func(w *tabwriter.Writer) { showTLS(w, v, c.PeerFingerprint()) })
		},
	}
	addAPIFlags(show, sf)
	inf := &apiFlags{}
	var certFile, keyFile string
	var pairScope bool
	install := &cobra.Command{
		Use:   "install --cert FILE --key FILE [--pair]",
		Short: "Replace the box's certificate (or with --pair the VIP's) with your own; served at once",
		Long: "The certificate (PEM, intermediates after it) must be in date and name the box (its name, or\n" +
			"NAME.DOMAIN, or one of its addresses); with --pair it must name the VIP, and goes to the primary.\n" +
			"The key must be the certificate's, PEM without a passphrase. Nothing changes if anything is wrong.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if certFile == "" || keyFile == "" {
				return fmt.Errorf("give --cert and --key")
			}
			certPEM, err := os.ReadFile(certFile)
			if err != nil {
				return fmt.Errorf("read --cert: %w", err)
			}
			keyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read --key: %w", err)
			}
			c, err := e.client(inf)
			if err != nil {
				return err
			}
			scope := cert.ScopeBox
			if pairScope {
				scope = cert.ScopePair
			}
			v, err := c.ReplaceTLS(cmd.Context(), scope, certPEM, keyPEM)
			if err != nil {
				return fmt.Errorf("install the certificate: %w", err)
			}
			return e.print(inf, v, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "installed: new connections get it now; clients that pinned the old one must trust the new fingerprint")
				showTLS(w, v, "")
			})
		},
	}
	install.Flags().StringVar(&certFile, "cert", "", "certificate file (PEM)")
	install.Flags().StringVar(&keyFile, "key", "", "private key file (PEM, no passphrase)")
	install.Flags().BoolVar(&pairScope, "pair", false, "the pair's certificate, served on the VIP (send it to the primary)")
	addAPIFlags(install, inf)
	var hexForm bool
	fingerprint := &cobra.Command{
		Use:   "fingerprint FILE",
		Short: "Print the SHA-256 fingerprint of a PEM certificate file (e.g. /etc/sand/tls/cert.pem on the box)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			leaf, err := cert.ParseLeaf(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if hexForm {
				fmt.Fprintln(e.stdout, cert.HexFingerprint(leaf.Raw))
			} else {
				fmt.Fprintln(e.stdout, cert.Fingerprint(leaf.Raw))
			}
			return nil
		},
	}
	fingerprint.Flags().BoolVar(&hexForm, "hex", false, "print it as browsers show it (AB:CD:...)")
	cmd.AddCommand(show, install, fingerprint)
	return cmd
}

// showTLS prints the certificates; presented marks the one this
// connection got.
func showTLS(w *tabwriter.Writer, v cert.View, presented string) {
	line := func(what string, in cert.Info) {
		mark := ""
		if presented != "" && in.Fingerprint == presented {
			mark = " (this connection)"
		}
		issuer := in.Issuer
		if in.SelfSigned {
			issuer = "self-signed"
		}
		fmt.Fprintf(w, "%s:\t%s%s\n", what, in.Fingerprint, mark)
		fmt.Fprintf(w, "\t%s\n", in.FingerprintHex)
		fmt.Fprintf(w, "\tnames %v, %s, valid until %s\n", in.Names, issuer, in.NotAfter.Format("2006-01-02"))
	}
	line("certificate of the box", v.Box)
	if v.Pair != nil {
		line("certificate of the VIP "+v.VIP, *v.Pair)
	}
}
