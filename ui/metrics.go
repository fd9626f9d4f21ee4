package ui

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves /metrics in Prometheus text format from a registry
// of its own (no global one): the box, the pair, the target and the LUNs,
// read at scrape time, plus the Go runtime and process metrics.
func metricsHandler(a *api) gin.HandlerFunc {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &boxCollector{a: a})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return gin.WrapH(h)
}

// boxCollector reads the box at every scrape. Which series exist depends on
// what is configured (no DRBD series on a standalone box), so it describes
// nothing up front and the registry does not check it against a fixed set.
type boxCollector struct{ a *api }

func (*boxCollector) Describe(chan<- *prometheus.Desc) {}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("sand_"+name, help, labels, nil)
}

var (
	descInfo            = desc("box_info", "This box: name, iSCSI target driver and pool kind (always 1).", "box", "driver", "pool")
	descRole            = desc("box_role", "Role of each box of the pair (1 for its current role): primary, secondary, standby, down or standalone.", "box", "role")
	descPairConfigured  = desc("pair_configured", "1 when this box has a peer (failover configured), 0 when standalone.")
	descFailovers       = desc("failovers_total", "Failovers this box has seen since sand started.")
	descVIPHeld         = desc("vip_held", "1 when the named box holds the VIP.", "address", "box")
	descDRBDConn        = desc("drbd_connection_state", "DRBD connection state of the resource (1 for the current state).", "resource", "state")
	descDRBDDisk        = desc("drbd_disk_state", "DRBD disk state of the local and the peer disk (1 for the current state).", "resource", "disk", "state")
	descDRBDResync      = desc("drbd_resync_active", "1 while a DRBD resync runs.", "resource")
	descDRBDProgress    = desc("drbd_sync_progress_ratio", "Progress of the running DRBD resync, 0 to 1.", "resource")
	descDRBDLeft        = desc("drbd_sync_remaining_seconds", "Estimated time left of the running DRBD resync.", "resource")
	descDRBDSplitBrain  = desc("drbd_split_brain", "1 when DRBD detected a split brain.", "resource")
	descWitness         = desc("witness_reachable", "1 when the witness answers.", "witness")
	descTargetUp        = desc("target_up", "1 when the iSCSI target answers.")
	descTargetSessions  = desc("target_sessions", "iSCSI sessions logged in to the target.")
	descLUNs            = desc("luns", "LUNs in the registry.")
	descLUNSize         = desc("lun_size_bytes", "Size of each LUN.", "lun", "target")
	descLUNUsed         = desc("lun_used_bytes", "Pool space each LUN takes (thin).", "lun")
	descLUNSessions     = desc("lun_sessions", "iSCSI sessions logged in to each LUN's target.", "lun")
	descPoolSize        = desc("pool_size_bytes", "Size of the storage pool.")
	descPoolProvisioned = desc("pool_provisioned_bytes", "Sum of the sizes of the LUNs.")
	descPoolUsed        = desc("pool_used_bytes", "Pool space taken by data.")
	descGeneration      = desc("registry_generation", "Generation of the LUN registry (grows with every change).")
	descProblems        = desc("problems", "Problems the box reports (see sand status).")
)

func (bc *boxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := bc.a
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	st := a.box.Status(ctx)
	gauge(descInfo, 1, st.Name, st.Driver, st.Pool)
	pv := a.pairView(ctx)
	gauge(descPairConfigured, b01(!pv.Standalone))
	ch <- prometheus.MustNewConstMetric(descFailovers, prometheus.CounterValue, float64(pv.Failovers))
	for _, b := range pv.Boxes {
		gauge(descRole, 1, b.Name, b.Role)
	}
	if v := pv.VIP; v != nil {
		for _, b := range pv.Boxes {
			gauge(descVIPHeld, b01(v.Holder == b.Name), v.Address, b.Name)
		}
	}
	if d := pv.DRBD; d != nil {
		gauge(descDRBDConn, 1, d.Resource, d.Connection)
		gauge(descDRBDDisk, 1, d.Resource, "local", d.LocalDisk)
		gauge(descDRBDDisk, 1, d.Resource, "peer", d.PeerDisk)
		gauge(descDRBDResync, b01(d.Syncing), d.Resource)
		gauge(descDRBDSplitBrain, b01(d.SplitBrain), d.Resource)
		if d.Syncing {
			gauge(descDRBDProgress, d.SyncPercent/100, d.Resource)
			if d.SyncLeft > 0 {
				gauge(descDRBDLeft, d.SyncLeft.Seconds(), d.Resource)
			}
		}
	}
	if w := pv.Witness; w != nil {
		gauge(descWitness, b01(w.Reachable), w.Name)
	}
	sess, err := a.box.Sessions(ctx)
	gauge(descTargetUp, b01(err == nil))
	if err == nil {
		gauge(descTargetSessions, float64(len(sess)))
	}
	luns := a.box.LUNs()
	gauge(descLUNs, float64(len(luns)))
	for _, v := range a.views(ctx, luns...) {
		gauge(descLUNSize, float64(v.Size), v.Name, v.Target)
		if v.Used != nil {
			gauge(descLUNUsed, float64(*v.Used), v.Name)
		}
		if v.Sessions != nil {
			gauge(descLUNSessions, float64(*v.Sessions), v.Name)
		}
	}
	if st.Capacity.Size > 0 {
		gauge(descPoolSize, float64(st.Capacity.Size))
		gauge(descPoolProvisioned, float64(st.Capacity.Provisioned))
		gauge(descPoolUsed, float64(st.Capacity.Used))
	}
	gauge(descGeneration, float64(st.Generation))
	gauge(descProblems, float64(len(st.Problems)))
}
