// Package daemon is `sand serve`: it assembles a box from its node config
// (pool, iSCSI target, registry, the pair runtime when paired, the API and
// web UI), serves until its context ends, and stops in reverse order on
// every way out.
package daemon

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

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/pair"
	"github.com/sand-appliance/sand/ui"
	"github.com/sand-appliance/sand/ui/cert"
)

// Run serves the box described by cfg until ctx ends.
func Run(ctx context.Context, cfg appliance.Config, log *slog.Logger) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	token, err := cfg.Token()
	if err != nil {
		return fmt.Errorf("read API token: %w", err)
	}
	monitor, err := cfg.Monitor()
	if err != nil {
		return fmt.Errorf("read the monitoring token: %w", err)
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
	certs, err := openCerts(cfg, box.Active, log)
	if err != nil {
		return err
	}
	opts := ui.Options{Token: token, MonitorToken: monitor, Logger: log, TLS: certs, Volumes: p.List}
	// stop ends what serves: the pair hands over to the peer before the
	// API closes (DRBD's handlers reach this box through the API).
	stop := func() error {
		log.Info("sand stopping; the iSCSI target keeps serving so initiators ride through a restart of sand")
		return nil
	}
	if cfg.Paired() {
		pr, err := startPair(ctx, cfg, box, log)
		if pr != nil {
			stop = func() error {
				log.Info("sand stopping: handing over to the peer")
				if err := pr.Shutdown(); err != nil {
					return fmt.Errorf("hand over: %w", err)
				}
				return nil
			}
			// Every way out hands over; Shutdown is idempotent.
			defer func() {
				if serr := pr.Shutdown(); serr != nil && err == nil {
					err = fmt.Errorf("hand over: %w", serr)
				}
			}()
		}
		if err != nil {
			return err
		}
		opts.Pair = pr
	} else if err := box.Start(ctx); err != nil {
		return err
	}
	if opts.Admin, err = ui.OpenAccount(cfg.AdminPasswordPath(), cfg.AdminPasswordHash, cfg.AdminPasswordFile); err != nil {
		return err
	}
	if opts.Admin == nil {
		log.Warn("no admin password: the web UI refuses every login; set admin_password_file or admin_password_hash in sand.yaml")
	}
	st := box.Status(ctx)
	box.Events().Add(events.Event{Kind: events.SandStarted, Message: fmt.Sprintf("sand started on %s: %d LUNs, registry generation %d", st.Name, st.LUNs, st.Generation)})
	handler, err := ui.New(box, opts)
	if err != nil {
		return err
	}
	log.Info("sand serving", "name", cfg.Name, "portal", portal.String(), "driver", cfg.Target.Driver, "pool", cfg.Pool.Kind)
	return serveAPI(ctx, cfg, handler, certs, log, stop)
}

// startPair builds the pair runtime and starts it; a pair that failed to
// start is returned too, for the caller to shut down.
func startPair(ctx context.Context, cfg appliance.Config, box *appliance.Box, log *slog.Logger) (*pair.Pair, error) {
	members, err := pair.NewMembership(cfg, log)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the sand binary for the DRBD handlers: %w", err)
	}
	pr, err := pair.New(pair.Deps{
		Config: cfg, Box: box, Members: members, Run: command.Exec{Log: log},
		Mounts: pair.SystemMounts{}, Devices: pair.SystemDevices{}, Log: log, Self: self,
	})
	if err != nil {
		return nil, errors.Join(err, members.Shutdown())
	}
	return pr, pr.Start(ctx)
}

// serveAPI serves the API and UI over HTTPS on cfg.Listen, and the
// redirect to it on cfg.TLS.HTTPRedirect, until ctx ends or serving fails,
// then runs stop and closes both.
func serveAPI(ctx context.Context, cfg appliance.Config, handler http.Handler, certs *cert.Store, log *slog.Logger, stop func() error) error {
	port, err := cfg.ListenPort()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", cfg.Listen, err)
	}
	servers := []*http.Server{ui.NewServer(handler, log)}
	servers[0].TLSConfig = certs.TLSConfig()
	served := make(chan error, 2)
	go func() { served <- servers[0].ServeTLS(ln, "", "") }()
	redirect := "none"
	if cfg.TLS.HTTPRedirect != "" {
		rln, err := net.Listen("tcp", cfg.TLS.HTTPRedirect)
		if err != nil {
			servers[0].Close()
			<-served
			return fmt.Errorf("listen for the HTTP redirect on %s: %w (set http_redirect to another port, or empty for none)", cfg.TLS.HTTPRedirect, err)
		}
		servers = append(servers, ui.NewRedirectServer(port, log))
		go func() { served <- servers[1].Serve(rln) }()
		redirect = rln.Addr().String()
	}
	box := certs.Box().Leaf
	log.Info("API and web UI listening over HTTPS", "addr", ln.Addr().String(), "http_redirect", redirect,
		"fingerprint", cert.Fingerprint(box.Raw), "fingerprint_hex", cert.HexFingerprint(box.Raw), "names", cert.SANs(box))
	// Ready only now that the first reconcile is done.
	daemon.SdNotify(false, daemon.SdNotifyReady)
	running := len(servers)
	select {
	case err = <-served:
		running--
		err = fmt.Errorf("serve API: %w", err)
	case <-ctx.Done():
	}
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	err = errors.Join(err, stop())
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(shutdown); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("shut down API: %w", serr))
		}
	}
	for ; running > 0; running-- {
		<-served
	}
	return err
}
