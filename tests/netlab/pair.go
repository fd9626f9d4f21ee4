package netlab

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Pair is two sand boxes in shared-disk mode (both see the same registry
// and pool files, as a DRBD pair sees the same data) with a VIP, and a
// third vote: a witness, or a gateway as the ping target.
type Pair struct {
	Boxes [2]*SandBox
	// Witness runs `sand witness`; nil when the boxes ping Gateway instead.
	Witness *Host
	// Gateway is the boxes' ping target when there is no witness.
	Gateway *Host
	VIP     string // address without prefix
	keyFile string
	// pairKeyFile is the boxes' pair key: the witness never gets it.
	pairKeyFile string
	bin         string
	wproc       *Proc
}

// GossipKeyFile is the gossip key all three members hold (the witness's
// one credential).
func (p *Pair) GossipKeyFile() string { return p.keyFile }

// PairKeyFile is the key only the two boxes hold.
func (p *Pair) PairKeyFile() string { return p.pairKeyFile }

// NewPair prepares san1 and san2 on the given hosts with the third vote
// (Pair.Witness or Pair.Gateway set in tie); Start runs them.
func NewPair(t testing.TB, bin string, san1, san2 *Host, tie Pair, vip string) *Pair {
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	p := &Pair{Witness: tie.Witness, Gateway: tie.Gateway, VIP: vip, keyFile: filepath.Join(dir, "serf.key"),
		pairKeyFile: filepath.Join(dir, "pair.key"), bin: bin}
	if err := os.WriteFile(p.keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rand.Read(key)
	if err := os.WriteFile(p.pairKeyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if (p.Witness == nil) == (p.Gateway == nil) {
		t.Fatal("netlab.NewPair: give a witness or a gateway")
	}
	hosts := [2]*Host{san1, san2}
	for i, h := range hosts {
		peer := hosts[1-i]
		var third string
		if p.Witness != nil {
			third = fmt.Sprintf("  witness: %s\n  join: [%s:7946, %s:7946]\n", p.Witness.Name, peer.IP, p.Witness.IP)
		} else {
			third = fmt.Sprintf("  ping_targets: [%s]\n  join: [%s:7946]\n", p.Gateway.IP, peer.IP)
		}
		extra := fmt.Sprintf(`pair:
  peer: %s
%s  serf_bind: %s:7946
  serf_key_file: %s
  pair_key_file: %s
  vip: %s/24
  vip_interface: eth0
  storage: shared
`, peer.Name, third, h.IP, p.keyFile, p.pairKeyFile, vip)
		p.Boxes[i] = newSandBox(t, h, bin, dir, dir, "", extra)
		p.Boxes[i].VIP = vip
	}
	return p
}

// StartWitness runs `sand witness`.
func (p *Pair) StartWitness() {
	p.wproc = p.Witness.Start(p.bin, "witness", "--name", p.Witness.Name, "--bind", p.Witness.IP+":7946",
		"--join", p.Boxes[0].Host.IP+":7946,"+p.Boxes[1].Host.IP+":7946", "--key-file", p.keyFile)
}

// StopWitness ends `sand witness` as systemd would (SIGTERM: it leaves
// the cluster) and waits for it; StartWitness runs it again.
func (p *Pair) StopWitness() error {
	if p.wproc == nil {
		return nil
	}
	return p.wproc.Signal(syscall.SIGTERM)
}

// HoldsVIP reports whether the box has the VIP on eth0.
func (p *Pair) HoldsVIP(b *SandBox) bool {
	out, err := b.Host.Run(b.T.Context(), "ip", "-o", "addr", "show", "dev", "eth0")
	return err == nil && strings.Contains(out, " "+p.VIP+"/")
}

// Serving reports whether the box's tgtd exports any target.
func (b *SandBox) Serving() bool {
	out, err := b.Host.Run(b.T.Context(), "tgtadm", "-C", fmt.Sprint(b.ControlPort), "--lld", "iscsi", "--op", "show", "--mode", "target")
	return err == nil && strings.Contains(out, "Target ")
}

// Primary returns the box that holds the VIP and serves, and the other;
// it fails the test unless exactly one box does.
func (p *Pair) Primary() (primary, secondary *SandBox, err error) {
	var holders []*SandBox
	for _, b := range p.Boxes {
		vip, serving := p.HoldsVIP(b), b.Serving()
		if vip != serving {
			return nil, nil, fmt.Errorf("%s: holds VIP %v but serves targets %v", b.Host.Name, vip, serving)
		}
		if vip {
			holders = append(holders, b)
		}
	}
	if len(holders) != 1 {
		return nil, nil, fmt.Errorf("%d boxes hold the VIP and serve", len(holders))
	}
	if holders[0] == p.Boxes[0] {
		return p.Boxes[0], p.Boxes[1], nil
	}
	return p.Boxes[1], p.Boxes[0], nil
}

// VIPHolder returns the one box that holds the VIP, or an error.
func (p *Pair) VIPHolder() (*SandBox, error) {
	var holders []*SandBox
	for _, b := range p.Boxes {
		if p.HoldsVIP(b) {
			holders = append(holders, b)
		}
	}
	if len(holders) != 1 {
		return nil, fmt.Errorf("%d boxes hold the VIP", len(holders))
	}
	return holders[0], nil
}
