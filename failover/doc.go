// Package failover decides and carries out which box of the pair is the
// primary: serf membership (membership.go), the decision (decide.go: Decide,
// a pure function of the inputs below; decider.go: the Decider, Decide with
// the memory its grace periods and back-off need, pure too), the resource
// group that acts on it (group.go), and the Controller that runs the loop
// (controller.go: read a Snapshot, ask the Decider, act, report the
// outcome back, advertise).
//
// # A box's role
//
//	           start (DRBD up, serf joined)
//	                      |
//	                      v
//	  +---------------- Secondary <--------------------------------+
//	  |        (Role Unknown: resource not up -> Stay)             |
//	  |                   |                                        |
//	  | admin standby     | Promote when all hold:                 | Demote when:
//	  v                   |  - local disk UpToDate, no split brain |  - quorum lost for QuorumGrace
//	Standby               |  - quorum (2 of self/peer/witness,     |    (isolated primary: drop VIP,
//	(never promotes;      |    or peer up / a ping target answers) |    stop target, no second writer)
//	 as primary: hands    |  - no intent on this box               |  - standby / switchover and the
//	 over once the peer   |  - no primary peer (DRBD or serf tag)  |    peer is ready (alive, connected,
//	 is ready)            |  - registry not older than the peer's  |    UpToDate, registry not older)
//	  |                   |  and one of:                           |  - local disk not UpToDate and
//	  | admin resume      |  - peer failed/left >= Settle ago      |    the peer is ready
//	  +---> Secondary     |  - peer hands over and is Secondary    |  - both primary and alive: the
//	                      |  - nobody primary, both connected:     |    tie-break loser (lower
//	                      |    the peer is not UpToDate, or this   |    generation, then higher name)
//	                      |    box wins the tie-break              |
//	                      v                                        |
//	                   Primary ------------------------------------+
//
//	any role + DRBD split brain --> SplitBrain: never promotes, never hands over,
//	                                NeedsAdmin; the admin picks the survivor.
//	                                 (Two live primaries: the tie-break loser still
//	                                 demotes, which stops a writer and discards nothing.)
//
//	DRBD Primary, resource group not running (sand restarted on the primary,
//	a demotion stopped half way) --> Primary: with quorum, the group is started
//	                                 again (adopted) where the rules keep the role.
//
// A peer that failed or left while this box had no quorum counts as gone
// only from RejoinGrace after this box regained it, and Settle runs from
// there. A promotion that fails is rolled back, and the next try waits
// 0.5, 1, 2 ... 10 s after it (RetryBackoff).
//
// No automatic failback: a box that comes back while the peer is primary
// stays Secondary and resyncs (DRBD's or serf's view of a primary peer
// forbids promotion). A switchover is ordered, never forced: the primary
// demotes first and advertises role=Secondary with intent=switchover; the
// peer promotes only once it sees that tag and DRBD connected and in sync.
// sand never forces a DRBD disconnect of a live peer: in the lab, a takeover
// that force-disconnected a live peer during a switchover made a real split
// brain and DRBD's after-sb policy then discarded acknowledged writes. It
// forces the disconnect only past a peer that serf decided failed, with
// quorum, for Settle (S7): by then an isolated-but-alive primary has
// demoted itself (Settle > QuorumGrace + a probe round), and were it stuck as DRBD primary,
// its own fencing keeps its I/O frozen (fence-peer finds no quorum). Waiting
// for DRBD's own timeouts instead cost 2-3 s more per failover in the lab.
// A peer that serf sees fail and return within seconds is starved, not
// dead (a 31-LUN demotion on one TCG vCPU: failed, alive, failed, alive,
// failed in 3 s, while DRBD kept its link): forcing then would be exactly
// the forced disconnect of a live primary, so S7f waits FlapSettle, and a
// dead peer is caught by DRBD's own timeouts meanwhile.
//
// # Rules of the decision, in order
//
// Decide is the stateless core. The Decider runs it with the rules marked
// * on top, which need memory: when quorum was lost or came back, how many
// promotions failed in a row. Every Decision names the rule that decided
// it (Decision.Rule); testdata/scenarios replays timelines rule by rule.
//
//	First:     R1* quorum came back at Q (or the first step of this run had it):
//	               a change of the peer's status dated before Q counts as dated
//	               Q + RejoinGrace (its earlier return moves with it, so S7f's
//	               view of a flapping peer does not change). An S7 Stay this
//	               causes is named R1.
//	Primary:   P1 no quorum -> Demote.
//	           P2 peer up and primary (DRBD, or its tag once it has been up for
//	              Settle) -> tie-break: winner Stay, loser Demote.
//	           P3 standby/switchover/local disk not UpToDate -> Demote if the peer
//	              is ready (and no split brain), else Stay.
//	           P4 otherwise Stay.
//	Secondary: S1 split brain, S2 switchover pending (IntentDone once the peer
//	           is primary), S3 standby, S4 disk not UpToDate, S4q no quorum -> Stay.
//	           S5 DRBD connected to a primary peer serf has not decided gone -> Stay.
//	           S6 peer generation > local -> Stay.
//	           S7 peer failed/left: Stay until Settle has passed since, then Promote.
//	              While DRBD is still connected to it: Promote at once if DRBD shows
//	              it Secondary (S7s: it stood down); else, with a witness, Promote
//	              with ForceDisconnect, but past a flapping peer (S7f: back from a
//	              failure less than FlapWindow before this one) only after
//	              FlapSettle; without a witness (S7p: ping targets) never
//	              ForceDisconnect: Stay until DRBD loses it too.
//	           S7u peer never seen -> Stay.
//	           S8p peer up and advertising primary -> Stay (unless it hands over and
//	               DRBD, connected, shows it Secondary).
//	           S8c DRBD not Connected (still syncing or cut) -> Stay.
//	           S8 peer hands over (standby/switchover) -> Promote (once its tag, or
//	              DRBD connected, shows it Secondary), marked HandOver: the
//	              peer closed the pool in order, so no metadata check is due.
//	           S9 nobody primary, peer disk not UpToDate -> Promote.
//	           S9t nobody primary, both UpToDate: the lower name Promotes, the
//	               other Stays.
//	Other:     U1 local role unknown (resource not up) -> Stay.
//	Then:      Q1* P1's Demote while quorum has been lost for less than
//	               QuorumGrace -> Stay: a box that comes back gossips the deaths
//	               it saw while cut off, and the witness refutes that within a
//	               few hundred ms. (Settle > QuorumGrace: the peer still waits.)
//	           A1* a Stay of P2, P3 or P4 with quorum while the resource group is
//	               not running -> Promote: adopt the role DRBD already has (the
//	               group's steps are idempotent).
//	           B1* a Promote less than RetryBackoff(n) after the n-th promotion in
//	               a row failed -> Stay.
//	           T1* a Stay on a box that is not primary (DRBD role or running group)
//	               while the peer hands over and still shows primary (tag or DRBD)
//	               -> the next step within HandOverTick, not the caller's tick:
//	               no event announces the peer's demotion.
//
// Generation: the registry lives on the replicated device, and every box
// advertises the generation it holds. A secondary never promotes when the
// peer advertised a newer one (serf keeps a failed member's last tags): its
// disk may say UpToDate while it missed the peer's last writes (DRBD 8.4
// keeps a disconnected secondary UpToDate unless fenced), and serving it
// would silently drop LUNs acknowledged to the admin. The caller must keep
// the secondary's copy current while connected, or failover is blocked.
//
// # Quorum and why serf alone is not enough
//
// With two members serf cannot tell a dead peer from a cut link: measured,
// when the link is cut both sides declare the other failed at the same
// moment (0.8-1.0 s tuned, 6-7 s with defaults), and with two members there
// is nobody to confirm or refute a suspicion. So a box needs quorum: 2 of
// {self, peer, witness}. The witness (`sand witness`, no storage, e.g. on a
// dom0) is the third vote, and as a third serf member it also carries
// memberlist's indirect probes, so a peer that only lost the direct path is
// refuted rather than declared failed. Without a witness, sand falls back to
// the classic pingd rule: a box that reaches none of its ping targets (the
// gateway) has no quorum. Ping targets vouch only for a box's own reach:
// if the boxes lose each other's gossip but both still reach the gateway,
// both have quorum. So without a witness a secondary never forces DRBD's
// link down (S7): while the replication link still shows the peer, the
// peer lives. And fence-peer confirms a gone peer only with the witness:
// with both links cut both boxes reach the gateway, and confirming on ping
// targets would let both resume I/O. So in a DRBD pair without a witness,
// a dead primary's peer cannot promote (DRBD refuses while the fence
// handler finds no confirmation, and I/O stays frozen) until the peer is
// back or the admin forces it; ping targets there only make an isolated
// primary stand down. On a shared disk (no second path) a gossip-only
// partition is pingd's old weakness. Configure a witness.
//
// # Fencing: acknowledged writes are never lost
//
// DRBD (8.4 and 9) runs with `fencing resource-and-stonith` and
// `fence-peer "/usr/sbin/sand fence-peer"` (with after-resync-target
// unfencing). When a primary loses the replication link, or a secondary is
// promoted while disconnected, DRBD freezes I/O and runs the handler; the
// primary therefore cannot acknowledge a write the peer does not have while
// the peer could still be promoted. `sand fence-peer` exits with DRBD's
// handler codes:
//
//	4  the peer's disk was outdated through the other path (a serf query
//	   over the front network; the peer runs `drbdadm outdate`, which DRBD
//	   allows once the peer's side saw the link drop too): it can no
//	   longer promote;
//	7  the peer is confirmed gone with quorum (serf says failed or left and
//	   the witness is alive), i.e. "fenced off the cluster";
//	6  the peer is primary and refused: DRBD outdates this side instead;
//	1  no answer within FenceWait (15 s, retried every 300 ms: DRBD often
//	   sees the link drop before serf declares the peer failed): I/O stays
//	   frozen until the link is back or the admin decides. Never 5: DRBD
//	   8.4 reads 5 as "unreachable, assumed dead", outdates the peer and
//	   resumes I/O, which would let an isolated primary acknowledge
//	   writes that a promoted peer never sees.
//
// The after-split-brain policies are disconnect (after-sb-0pri, -1pri,
// -2pri): DRBD never discards a side by itself, and a split brain is
// reported (Local.SplitBrain) and left to the admin.
//
// # Who may say what: message authentication
//
// Three kinds of member gossip: the two boxes and the witness. The witness
// votes and does nothing else. Two credentials keep it so:
//
//   - The gossip key (pair.serf_key_file; the witness's --key-file) lets a
//     member gossip: join, be probed, relay, vote. sand seals every packet
//     and stream with it itself (gossipTransport, XChaCha20-Poly1305), with
//     memberlist's own keyring off. Serf lets any member that holds the
//     gossip key rotate every member's keyring (its internal queries
//     _serf_install-key, _serf_use-key and _serf_remove-key, answered
//     inside serf before any event reaches sand; serf.Config has no hook or
//     per-member rule for them). With no keyring, every member answers them
//     "no keyring to modify": nobody, the witness included, can change a
//     box's gossip key but the admin, through the key file (several keys,
//     one per line: the first seals, all open, so a key is replaced
//     without a moment in which two members cannot hear each other).
//   - The pair key (pair.pair_key_file, 32 random bytes; the two boxes
//     only) signs every intent, query and answer between the boxes:
//     HMAC-SHA256 over magic and version, kind, sender name, receiver name,
//     time, a random nonce, the question's nonce (for an answer) and the
//     payload (PairAuth, auth.go). A box accepts an intent or a query only
//     when it is signed by its configured peer's name for its own name,
//     and for a query serf also names the peer as its source; an answer
//     only from the member it asked, signed for this very question. A
//     message signed more than MessageMaxAge (30 s) from this box's clock,
//     either way, is stale; one accepted before within the window is a
//     replay. Anything else (unsigned, another key, the witness, another
//     box, misaddressed, stale, replayed) is dropped, answered with
//     nothing, logged, and recorded as a message-refused event naming the
//     sender and the reason (at most 20 at once, then one per 500 ms).
//
// So the witness cannot put a box in standby, outdate the secondary, or
// hand a box a record of device-mapper tables; and the record a box
// replays is checked on its own besides (package dm: a thin pool's
// tables, stacked only on the record's devices and the PV).
//
// What the gossip key still allows, and so the witness (or anyone who has
// its key) still can: everything memberlist and serf let a member do.
// It votes, and so can give or withhold quorum. It can claim things about
// members' liveness (suspect and dead messages, which the accused member
// refutes within a probe round, so a persistent liar makes a box look
// flapping) and, briefly, about their tags (role, disk, intent,
// generation: serf tags are unsigned claims; the member refutes them, and
// the decision never promotes past what DRBD itself shows of the peer,
// S5 and S8p). It can race a forged answer to a box's question: serf takes
// one answer per member, so the real one is then dropped; the forged one
// is refused, and the box falls back (vgchange instead of the record; the
// fence retries until FenceWait and leaves I/O frozen): availability,
// never safety. And it reads the gossip (tags, the questions, the
// hand-over record's device names and sizes). A witness that must not be
// trusted even that far needs its own gossip key, which serf's one shared
// keyring cannot give: members of one serf cluster share the gossip key.
//
// Every member (both boxes and the witness) runs the same sealing; a
// member of an older sand, with memberlist's keyring, cannot gossip with
// them, so a pair is upgraded with its witness in one go.
package failover
