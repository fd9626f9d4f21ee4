package lab

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// A box booted from the kernel gets its secrets the way a server gets
// them: in node.conf on a SANDCFG file system, here a small disk of its
// own (cfg.img beside its data disk), never on the kernel command line,
// which every user of the box can read in /proc/cmdline. The image refuses
// secrets there. The command line keeps the box's other settings, so the
// console and the QEMU command line still say which box it is.

// cmdlineKeys are the node settings the lab may put on the kernel command
// line: none of them is a secret. Every other setting (token,
// admin_password, serf_key, drbd_secret and whatever key comes next) goes
// to node.conf only.
var cmdlineKeys = map[string]bool{
	"name": true, "addr": true, "front_if": true, "repl": true, "repl_if": true, "vip": true,
	"disk": true, "peer": true, "peer_repl": true, "pair": true, "peer_name": true,
	"witness": true, "witness_name": true,
}

// onCmdline reports whether the setting key=value may go on the command line.
func onCmdline(kv string) bool {
	k, _, _ := strings.Cut(kv, "=")
	return cmdlineKeys[k]
}

// cfgLabel is the file system label the image's node setup mounts on
// /etc/sand when the command line says sand.cfg=LABEL=SANDCFG.
const cfgLabel = "SANDCFG"

// cfgDisk is the box's config disk, when it boots the kernel.
func (b *Box) cfgDisk() string { return filepath.Join(filepath.Dir(b.state().Disk), "cfg.img") }

// nodeConf is node.conf as the lab writes it, every setting of the box.
func (b *Box) nodeConf() string {
	return "# node settings of " + b.Name + ", written by sand-lab\n" + strings.Join(b.Settings(), "\n") + "\n"
}

// makeConfigDisk makes the box's config disk once: an ext4 file system
// labelled SANDCFG holding node.conf (mode 0600). It stays across the box's
// reboots, as the config partition of a server does: what first boot
// keeps there (the API token, the admin password's hash) persists.
func (b *Box) makeConfigDisk(ctx context.Context) error {
	disk := b.cfgDisk()
	if exists(disk) {
		return nil
	}
	dir, err := os.MkdirTemp(filepath.Dir(disk), "sandcfg-")
	if err != nil {
		return fmt.Errorf("config disk of %s: %w", b.Name, err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "node.conf"), []byte(b.nodeConf()), 0o600); err != nil {
		return fmt.Errorf("config disk of %s: %w", b.Name, err)
	}
	tmp := disk + ".tmp"
	defer os.Remove(tmp)
	if out, err := exec.CommandContext(ctx, "mke2fs", "-q", "-t", "ext4", "-L", cfgLabel, "-d", dir,
		"-E", "root_owner=0:0", tmp, "16M").CombinedOutput(); err != nil {
		return fmt.Errorf("make the config disk of %s: %w: %s", b.Name, err, out)
	}
	if err := os.Rename(tmp, disk); err != nil {
		return fmt.Errorf("config disk of %s: %w", b.Name, err)
	}
	return nil
}

// drbdSecret is the pair's DRBD shared secret: an HMAC-SHA256 of a fixed
// label under the pair's gossip key, which the lab makes at random when it
// pairs the boxes. So it is made at pairing too, tells nothing about the
// gossip key, and needs no place of its own in the lab's state. 43
// characters of base64 (DRBD takes 16-63).
func drbdSecret(serfKey string) string {
	m := hmac.New(sha256.New, []byte(serfKey))
	m.Write([]byte("sand-lab drbd shared-secret"))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}
