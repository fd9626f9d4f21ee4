package drbd

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"
)

// header starts every rendered file.
const header = "# Written by sand from its resource model: edits here are overwritten.\n"

// Render84 renders r in DRBD 8.4 syntax (drbdadm-84, the in-tree 8.4 module):
// net options and after-split-brain policies in net, fencing in disk, one
// "on" section per node. The output is deterministic. It does not validate:
// call Validate first (Admin.WriteConfig does).
func Render84(r Resource) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	fmt.Fprintf(&b, "resource %s {\n", r.Name)
	renderNet(&b, r, false)
	renderDisk(&b, r, true)
	renderHandlers(&b, r.Handlers)
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "  on %s { device %s; disk %s; address %s; meta-disk internal; }\n",
			n.Name, r.Device(), n.Disk, renderAddress(n.Address, r.Port))
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// Render9 renders r in DRBD 9 syntax: fencing moves to net, each "on" section
// carries a node-id and a volume, and a connection section names the pair.
// Node ids are Node.NodeID, or the node's index when both are 0.
func Render9(r Resource) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	fmt.Fprintf(&b, "resource %s {\n", r.Name)
	renderNet(&b, r, true)
	renderDisk(&b, r, false)
	renderHandlers(&b, r.Handlers)
	ids := [2]int{r.Nodes[0].NodeID, r.Nodes[1].NodeID}
	if ids == [2]int{} {
		ids = [2]int{0, 1}
	}
	for i, n := range r.Nodes {
		fmt.Fprintf(&b, "  on %s {\n", n.Name)
		fmt.Fprintf(&b, "    node-id %d;\n", ids[i])
		fmt.Fprintf(&b, "    address %s;\n", renderAddress(n.Address, r.Port))
		b.WriteString("    volume 0 {\n")
		fmt.Fprintf(&b, "      device %s;\n", r.Device())
		fmt.Fprintf(&b, "      disk %s;\n", n.Disk)
		b.WriteString("      meta-disk internal;\n")
		b.WriteString("    }\n")
		b.WriteString("  }\n")
	}
	b.WriteString("  connection {\n")
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "    host %s;\n", n.Name)
	}
	b.WriteString("  }\n")
	b.WriteString("}\n")
	return b.Bytes()
}

func renderNet(b *bytes.Buffer, r Resource, fencingInNet bool) {
	n := r.Net
	b.WriteString("  net {\n")
	b.WriteString("    protocol C;\n")
	if n.Auth != (Auth{}) {
		fmt.Fprintf(b, "    cram-hmac-alg %s;\n", n.Auth.HMACAlg)
		fmt.Fprintf(b, "    shared-secret \"%s\";\n", string(n.Auth.Secret))
	}
	if fencingInNet && r.Fencing != "" {
		fmt.Fprintf(b, "    fencing %s;\n", r.Fencing)
	}
	fmt.Fprintf(b, "    after-sb-0pri %s;\n", orDisconnect(n.AfterSB0Pri))
	fmt.Fprintf(b, "    after-sb-1pri %s;\n", orDisconnect(n.AfterSB1Pri))
	fmt.Fprintf(b, "    after-sb-2pri %s;\n", orDisconnect(n.AfterSB2Pri))
	if n.PingInt != 0 {
		fmt.Fprintf(b, "    ping-int %d;\n", n.PingInt/time.Second)
	}
	if n.PingTimeout != 0 {
		fmt.Fprintf(b, "    ping-timeout %d;\n", n.PingTimeout/(100*time.Millisecond))
	}
	if n.Timeout != 0 {
		fmt.Fprintf(b, "    timeout %d;\n", n.Timeout/(100*time.Millisecond))
	}
	if n.ConnectInt != 0 {
		fmt.Fprintf(b, "    connect-int %d;\n", n.ConnectInt/time.Second)
	}
	b.WriteString("  }\n")
}

func renderDisk(b *bytes.Buffer, r Resource, fencingInDisk bool) {
	d := r.Disk
	b.WriteString("  disk {\n")
	onIOError := d.OnIOError
	if onIOError == "" {
		onIOError = "detach"
	}
	fmt.Fprintf(b, "    on-io-error %s;\n", onIOError)
	if fencingInDisk && r.Fencing != "" {
		fmt.Fprintf(b, "    fencing %s;\n", r.Fencing)
	}
	if d.ResyncRate != 0 {
		b.WriteString("    c-plan-ahead 0;\n")
		if d.ResyncRate%1024 == 0 {
			fmt.Fprintf(b, "    resync-rate %dM;\n", d.ResyncRate/1024)
		} else {
			fmt.Fprintf(b, "    resync-rate %dk;\n", d.ResyncRate)
		}
	}
	if d.ALExtents != 0 {
		fmt.Fprintf(b, "    al-extents %d;\n", d.ALExtents)
	}
	b.WriteString("  }\n")
}

func renderHandlers(b *bytes.Buffer, h Handlers) {
	if h == (Handlers{}) {
		return
	}
	b.WriteString("  handlers {\n")
	for _, kv := range []struct{ k, v string }{
		{"fence-peer", h.FencePeer},
		{"after-resync-target", h.AfterResyncTarget},
		{"pri-lost-after-sb", h.PriLostAfterSB},
		{"split-brain", h.SplitBrain},
	} {
		if kv.v != "" {
			fmt.Fprintf(b, "    %s \"%s\";\n", kv.k, kv.v)
		}
	}
	b.WriteString("  }\n")
}

func orDisconnect(p AfterSB) AfterSB {
	if p == "" {
		return AfterSBDisconnect
	}
	return p
}

// renderAddress writes an address statement's value: 10.0.0.1:7789, or
// ipv6 [fd00::1]:7789.
func renderAddress(a netip.Addr, port uint16) string {
	if a.Is6() {
		return fmt.Sprintf("ipv6 [%s]:%d", a, port)
	}
	return fmt.Sprintf("%s:%d", a, port)
}
