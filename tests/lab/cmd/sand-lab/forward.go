package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sand-appliance/sand/tests/lab"
	"github.com/sand-appliance/sand/ui/cert"
)

// defaultUIForward is where sand-lab up makes the web UI reachable from
// this machine's own browser.
const defaultUIForward = "127.0.0.1:7443"

// uiTarget is what the forwarded port reaches: the VIP in a pair (the
// pair's certificate), else the first box.
func uiTarget(l *lab.Lab) (target, url string) {
	if l.Pair != "" {
		return net.JoinHostPort(lab.VIP().String(), strconv.Itoa(lab.APIPort)), lab.VIPURL()
	}
	b := l.Box(l.Names()[0])
	return net.JoinHostPort(b.FrontIP(), strconv.Itoa(lab.APIPort)), b.APIURL()
}

// uiFingerprint is the fingerprint of the certificate uiTarget shows.
func uiFingerprint(ctx context.Context, l *lab.Lab, wait time.Duration) (string, error) {
	if l.Pair != "" {
		return l.VIPFingerprint(ctx, wait)
	}
	return l.Box(l.Names()[0]).Fingerprint(), nil
}

// startUIForward forwards listen (on this machine's loopback) to the web
// UI inside the lab and says how to open it; the certificate's fingerprint
// follows once a box serves it (in a pair, once one is primary). Wait on
// the returned group before the lab goes down.
func startUIForward(ctx context.Context, w io.Writer, l *lab.Lab, listen string) *sync.WaitGroup {
	var wg sync.WaitGroup
	if listen == "" {
		return &wg
	}
	target, url := uiTarget(l)
	fwd, err := l.Forward(ctx, listen, target)
	if err != nil {
		fmt.Fprintf(w, "\nweb UI from this machine's browser: not forwarded: %v (give --ui-forward 127.0.0.1:PORT)\n", err)
		return &wg
	}
	local := "https://" + fwd.Addr.String() + "/ui/"
	fmt.Fprintf(w, "\nweb UI from this machine's browser: %s (forwarded to %s; user admin, the token as first password)\n", local, url)
	wg.Add(2)
	go func() {
		defer wg.Done()
		fwd.Wait()
	}()
	go func() {
		defer wg.Done()
		fp, err := uiFingerprint(ctx, l, 10*time.Minute)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(w, "  (its certificate's fingerprint is unknown yet: %v)\n", err)
			}
			return
		}
		fmt.Fprintf(w, "  %s shows the %s self-signed certificate, which names the box, not 127.0.0.1: the browser warns.\n"+
			"  Accept it once its SHA-256 fingerprint reads %s (sand: %s).\n", local, map[bool]string{true: "pair's", false: "box's"}[l.Pair != ""], cert.FingerprintHex(fp), fp)
	}()
	return &wg
}

// printTLS lists each box's HTTPS address and certificate.
func printTLS(w io.Writer, l *lab.Lab) {
	for _, n := range l.Names() {
		b := l.Box(n)
		fp := b.Fingerprint()
		if fp == "" {
			fp = "(not reported yet)"
		}
		fmt.Fprintf(w, "web UI of %s: %s (from the namespaces), certificate %s\n", n, b.UIURL(), fp)
	}
}
