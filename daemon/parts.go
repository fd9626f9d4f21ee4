package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/appliance/pool/lvm"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/iscsi"
	"github.com/sand-appliance/sand/iscsi/lio"
	"github.com/sand-appliance/sand/iscsi/tgt"
)

func newPool(cfg appliance.Config, log *slog.Logger) (pool.Pool, error) {
	switch cfg.Pool.Kind {
	case "file":
		var size int64
		if cfg.Pool.Size != "" {
			size, _ = appliance.ParseSize(cfg.Pool.Size) // checked by Validate
		}
		return file.New(cfg.Pool.Dir, size)
	case "lvm":
		p := &lvm.Pool{VG: cfg.Pool.VG, ThinPool: cfg.Pool.ThinPool, Run: command.Exec{Log: log}}
		if cfg.Paired() && cfg.Pair.Storage == "drbd" {
			// The pair's DRBD device is the pool's only physical volume.
			p.Devices = []string{drbd.Resource{Minor: cfg.Pair.DRBD.Minor}.Device()}
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown pool kind %q", cfg.Pool.Kind)
}

// startTarget starts (or adopts) the iSCSI target and returns its driver.
func startTarget(ctx context.Context, cfg appliance.Config, portal string, log *slog.Logger) (iscsi.Driver, error) {
	switch cfg.Target.Driver {
	case "tgt":
		d := tgt.NewDaemon(command.Exec{Log: log}, cfg.Target.TgtControlPort, []string{portal}, log)
		// A paired box's tgtd dies with sand: a dead sand must stop
		// serving, or the peer's takeover would make two writers.
		d.DieWithParent = cfg.Paired()
		if err := d.Start(ctx); err != nil {
			return nil, fmt.Errorf("start the tgt target: %w", err)
		}
		return tgt.New(command.Exec{Log: log}, cfg.Target.TgtControlPort, log), nil
	case "lio":
		d := lio.New(lio.NewOSFS(cfg.Target.ConfigFS), log)
		if cfg.Paired() {
			// Best effort: an unwarmed kernel only makes the first
			// takeover slower; a failure is logged for the admin.
			if err := warmLIO(ctx, d); err != nil {
				log.Warn("build a throwaway target before any takeover needs one", "err", err)
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("unknown target driver %q", cfg.Target.Driver)
}

// warmLIO runs lio.Driver.Warm on a scratch file that it removes after.
func warmLIO(ctx context.Context, d *lio.Driver) error {
	f, err := os.CreateTemp("", "sand-lio-warm-*")
	if err != nil {
		return fmt.Errorf("make a scratch file: %w", err)
	}
	defer os.Remove(f.Name())
	const size = 1 << 20
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("make a scratch file: %w", err)
	}
	return d.Warm(ctx, f.Name(), size)
}

// allowNonlocalBind lets the target listen on the VIP before the VIP is on
// the box, so the target is ready the moment the VIP arrives (the VIP comes
// last in the resource group). It is a per-namespace setting.
func allowNonlocalBind(v6 bool) error {
	path := "/proc/sys/net/ipv4/ip_nonlocal_bind"
	if v6 {
		path = "/proc/sys/net/ipv6/ip_nonlocal_bind"
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("allow the target to bind the VIP: %w", err)
	}
	return nil
}
