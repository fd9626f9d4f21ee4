package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/appliance/pool/lvm"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/iscsi"
	"github.com/sand-appliance/sand/iscsi/lio"
	"github.com/sand-appliance/sand/iscsi/tgt"
	"github.com/sand-appliance/sand/ui"
)

func serveCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the appliance daemon: pool, registry, iSCSI target and API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.loadConfig(flagMap(cmd,
				"name", "name", "listen", "listen", "portal", "portal", "state_dir", "state-dir",
				"api_token_file", "api-token-file", "pool.kind", "pool-kind", "pool.dir", "pool-dir",
				"pool.size", "pool-size", "target.driver", "driver", "target.tgt_control_port", "tgt-control-port"))
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, e.logger())
		},
	}
	f := cmd.Flags()
	f.String("name", "", "this box's name")
	f.String("listen", "", "API address, host:port")
	f.String("portal", "", "iSCSI portal address (ip or ip:port)")
	f.String("state-dir", "", "directory of the registry and ietd.conf")
	f.String("api-token-file", "", "file holding the API token")
	f.String("pool-kind", "", "storage pool: file or lvm")
	f.String("pool-dir", "", "directory of the file pool")
	f.String("pool-size", "", "size limit of the file pool, e.g. 100G")
	f.String("driver", "", "iSCSI target driver: tgt or lio")
	f.Int("tgt-control-port", 0, "tgtd control port (tgtd -C), unique per tgtd on a host")
	return cmd
}

func serve(ctx context.Context, cfg appliance.Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	token, err := apiToken(cfg)
	if err != nil {
		return fmt.Errorf("read API token: %w", err)
	}
	p, err := newPool(cfg, log)
	if err != nil {
		return err
	}
	portal, err := cfg.PortalAddr()
	if err != nil {
		return err
	}
	if cfg.Paired() {
		if err := allowNonlocalBind(portal.Addr().Is6()); err != nil {
			return err
		}
	}
	driver, err := startTarget(ctx, cfg, portal.String(), log)
	if err != nil {
		return err
	}
	box := appliance.NewBox(cfg, p, driver, log)
	var pr *pair
	if cfg.Paired() {
		if pr, err = startPair(ctx, cfg, box, log); err != nil {
			return err
		}
	} else if err := box.Start(ctx); err != nil {
		return err
	}
	admin, err := ui.OpenAccount(cfg.AdminPasswordPath(), cfg.AdminPasswordHash, cfg.AdminPasswordFile)
	if err != nil {
		return err
	}
	if admin == nil {
		log.Warn("no admin password: the web UI refuses every login; set admin_password_file or admin_password_hash in sand.yaml")
	}
	st := box.Status(ctx)
	box.Events().Add(events.Event{Kind: events.SandStarted, Message: fmt.Sprintf("sand started on %s: %d LUNs, registry generation %d", st.Name, st.LUNs, st.Generation)})
	opts := ui.Options{
		Token: token, Logger: log, Admin: admin, SecureCookies: cfg.SecureCookies, Volumes: p.List,
	}
	if pr != nil {
		opts.Pair = pr
	}
	handler, err := ui.New(box, opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("sand serving", "name", cfg.Name, "api", ln.Addr().String(), "portal", portal.String(),
		"driver", cfg.Target.Driver, "pool", cfg.Pool.Kind)
	// Tell systemd we are ready only now that the first reconcile is done.
	daemon.SdNotify(false, daemon.SdNotifyReady)

	select {
	case err := <-served:
		return fmt.Errorf("serve API: %w", err)
	case <-ctx.Done():
	}
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	if pr != nil {
		log.Info("sand stopping: handing over to the peer")
		if err := pr.stop(); err != nil {
			log.Error("hand over", "err", err)
		}
	} else {
		log.Info("sand stopping; the iSCSI target keeps serving so initiators ride through a restart of sand")
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down API: %w", err)
	}
	return nil
}

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
			p.Devices = []string{drbdDevice(cfg)}
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown pool kind %q", cfg.Pool.Kind)
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

// startTarget starts (or adopts) the iSCSI target and returns its driver.
func startTarget(ctx context.Context, cfg appliance.Config, portal string, log *slog.Logger) (iscsi.Driver, error) {
	switch cfg.Target.Driver {
	case "tgt":
		d := tgt.NewDaemon(command.Exec{Log: log}, cfg.Target.TgtControlPort, []string{portal}, log)
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
