package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Firmware is the UEFI firmware a box booting the disk image runs, and
// FirmwareVars the template of its variable store (Debian's ovmf).
const (
	Firmware     = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	FirmwareVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// ensureFirmware returns the UEFI firmware, installing Debian's ovmf when
// it is missing (as mkimage.sh installs its own tools).
func ensureFirmware(ctx context.Context, log *slog.Logger) (string, error) {
	if exists(Firmware) && exists(FirmwareVars) {
		return Firmware, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("boot from the disk image: %s is missing (apt-get install ovmf)", Firmware)
	}
	log.Info("installing UEFI firmware for the disk image boot (apt-get install ovmf)")
	for _, args := range [][]string{{"update", "-q"}, {"install", "-y", "-q", "--no-install-recommends", "ovmf"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("install ovmf: apt-get %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 10))
		}
	}
	if !exists(Firmware) {
		return "", fmt.Errorf("ovmf installed but %s is missing", Firmware)
	}
	return Firmware, nil
}

// makeBootDisk gives a box its own copy of the disk image (sparse), with
// the box's node settings in node.conf on the SANDCFG partition, the way
// an admin prepares a stick for a server, and its own UEFI variables.
func (l *Lab) makeBootDisk(ctx context.Context, b *Box) error {
	s := b.state()
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", l.DiskImg, s.BootDisk).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the disk image for %s: %w: %s", b.Name, err, out)
	}
	if err := copyFile(FirmwareVars, s.FirmwareVars); err != nil {
		return fmt.Errorf("UEFI variables of %s: %w", b.Name, err)
	}
	start, size, err := partition(ctx, s.BootDisk, "SANDCFG")
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(s.BootDisk), "sandcfg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "node.conf"), []byte(b.nodeConf()), 0o600); err != nil {
		return err
	}
	fsimg := s.BootDisk + ".sandcfg"
	defer os.Remove(fsimg)
	if out, err := exec.CommandContext(ctx, "mke2fs", "-q", "-t", "ext4", "-L", "SANDCFG", "-d", dir,
		"-E", "root_owner=0:0", fsimg, strconv.FormatInt(size/1024, 10)+"k").CombinedOutput(); err != nil {
		return fmt.Errorf("make the SANDCFG file system of %s: %w: %s", b.Name, err, out)
	}
	if err := writeAt(fsimg, s.BootDisk, start); err != nil {
		return fmt.Errorf("write SANDCFG of %s: %w", b.Name, err)
	}
	l.log.Info("boot disk ready", "box", b.Name, "disk", s.BootDisk)
	return nil
}

// partition finds a GPT partition by name and returns its offset and size
// in bytes.
func partition(ctx context.Context, disk, name string) (start, size int64, err error) {
	out, err := exec.CommandContext(ctx, "sfdisk", "--json", disk).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("read the partition table of %s: %w", disk, err)
	}
	var t struct {
		PartitionTable struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &t); err != nil {
		return 0, 0, fmt.Errorf("parse the partition table of %s: %w", disk, err)
	}
	ss := t.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	for _, p := range t.PartitionTable.Partitions {
		if p.Name == name {
			return p.Start * ss, p.Size * ss, nil
		}
	}
	return 0, 0, fmt.Errorf("%s has no partition named %s", disk, name)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeAt copies the file src into dst at offset, in place.
func writeAt(src, dst string, offset int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := out.Seek(offset, io.SeekStart); err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
