package io.overlay4j.micrometer;

import static java.util.Objects.requireNonNull;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.MeterBinder;
import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.NodeStats;
import io.overlay4j.OffloadStatus;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.PeerStats;
import io.overlay4j.TrafficStats;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Micrometer meters for one {@link OverlayNode}, read from its {@link OverlayNode#nodeStats() stats snapshot}.
 *
 * <table>
 *   <caption>Meters (Prometheus names in brackets)</caption>
 *   <tr><th>name</th><th>type</th><th>tags</th><th>what</th></tr>
 *   <tr><td>{@code overlay4j.packets} [{@code overlay4j_packets_total}]</td><td>counter</td>
 *       <td>{@code direction}: {@code egress}, {@code ingress}</td>
 *       <td>inner packets forwarded (TUN → peers, peers → TUN)</td></tr>
 *   <tr><td>{@code overlay4j.bytes} [{@code overlay4j_bytes_total}]</td><td>counter</td><td>{@code direction}</td>
 *       <td>their bytes (inner IP packets)</td></tr>
 *   <tr><td>{@code overlay4j.icmp.sent} [{@code overlay4j_icmp_sent_total}]</td><td>counter</td><td></td>
 *       <td>ICMP net-unreachable replies written back into the TUN</td></tr>
 *   <tr><td>{@code overlay4j.drops} [{@code overlay4j_drops_total}]</td><td>counter</td>
 *       <td>{@code reason}: every {@link DropReason}, e.g. {@code no_route}</td>
 *       <td>dropped packets</td></tr>
 *   <tr><td>{@code overlay4j.peer.packets} [{@code overlay4j_peer_packets_total}]</td><td>counter</td>
 *       <td>{@code peer} (its subnet, e.g. {@code 100.96.2.0/24}), {@code direction}</td>
 *       <td>inner packets sent to the peer (egress) and admitted from it (ingress)</td></tr>
 *   <tr><td>{@code overlay4j.peer.bytes} [{@code overlay4j_peer_bytes_total}]</td><td>counter</td>
 *       <td>{@code peer}, {@code direction}</td><td>their bytes</td></tr>
 *   <tr><td>{@code overlay4j.peer.last.seen} [{@code overlay4j_peer_last_seen_seconds}]</td><td>gauge</td>
 *       <td>{@code peer}</td>
 *       <td>when the last datagram from the peer was admitted, seconds since the epoch; NaN if none was</td></tr>
 *   <tr><td>{@code overlay4j.peers} [{@code overlay4j_peers}]</td><td>gauge</td><td></td>
 *       <td>the other hosts' leases the node routes to</td></tr>
 *   <tr><td>{@code overlay4j.lease.remaining} [{@code overlay4j_lease_remaining_seconds}]</td><td>gauge</td>
 *       <td></td><td>seconds until the node's lease expires unless renewed (0 once expired); NaN without a
 *       lease, for a reservation and once closed</td></tr>
 *   <tr><td>{@code overlay4j.store.reachable} [{@code overlay4j_store_reachable}]</td><td>gauge</td><td></td>
 *       <td>1 while the store answers ({@link NodeStats#storeReachable()}), else 0</td></tr>
 *   <tr><td>{@code overlay4j.node.state} [{@code overlay4j_node_state}]</td><td>gauge</td>
 *       <td>{@code state}: every {@link OverlayNode.State}, e.g. {@code ready}</td>
 *       <td>1 for the node's state, 0 for the others</td></tr>
 *   <tr><td>{@code overlay4j.offload} [{@code overlay4j_offload}]</td><td>gauge</td>
 *       <td>{@code device}, {@code feature} (e.g. {@code tun_vnet_header}), {@code status} ({@code on},
 *       {@code refused}, {@code off})</td>
 *       <td>1 for the offload's status, 0 for the others ({@link OffloadStatus})</td></tr>
 * </table>
 *
 * <p>Tag values made from enums are their names in lower case. Per-peer meters exist only for backends that count per
 * peer (the udp backend; not the kernel ones), offload meters only for backends that report offloads; they come and go
 * with the peers and devices (the binder follows the node's events), so the meters of a peer that leaves are removed.
 * The counters are monotonic over the node's life, also across a move to a new subnet.
 *
 * <p>A closed node (or one whose start failed) reads as closed, never as an error: {@code overlay4j.node.state} is 1
 * for {@code closed}, the counters keep their last values, the store reads unreachable, the lease remaining NaN, and
 * the offload meters are removed. A node not started yet reads {@code starting} with zeros.
 *
 * <p>The state, store and peer-count gauges read the node directly; the other meters read a snapshot that is reused
 * for 100 ms, so one scrape costs one snapshot, not one per meter. Several nodes in one registry need a tag that tells
 * them apart, e.g. {@code new OverlayNodeMetrics(node, Tags.of("node", "host1"))}. {@link #close()} removes the
 * binder's meters from every registry it was bound to and stops following the node.
 *
 * <pre>{@code
 * OverlayNodeMetrics metrics = new OverlayNodeMetrics(node);
 * metrics.bindTo(registry);   // e.g. a PrometheusMeterRegistry
 * }</pre>
 */
public final class OverlayNodeMetrics implements MeterBinder, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(OverlayNodeMetrics.class);
    private static final long SNAPSHOT_NANOS = TimeUnit.MILLISECONDS.toNanos(100);
    private static final String[] DIRECTIONS = {"egress", "ingress"};

    private final OverlayNode node;
    private final Tags tags;
    private final Object lock = new Object();
    // Guarded by lock.
    private final List<Bound> bound = new ArrayList<>();
    private final Map<Ipv4Prefix, PeerSource> peers = new TreeMap<>();
    private final Map<String, OffloadSource> offloads = new TreeMap<>();
    private OverlayNode.Registration registration;
    private List<Lease> reconciledPeers;
    private boolean closed;
    private boolean readFailureLogged;

    private volatile Snapshot snapshot;

    /** Meters for {@code node}, without extra tags. */
    public OverlayNodeMetrics(OverlayNode node) {
        this(node, Tags.empty());
    }

    /** Meters for {@code node}, each with {@code tags} (e.g. one naming the node) besides its own. */
    public OverlayNodeMetrics(OverlayNode node, Iterable<Tag> tags) {
        this.node = requireNonNull(node, "node");
        this.tags = Tags.of(requireNonNull(tags, "tags"));
    }

    /**
     * Registers the node's meters with {@code registry} and follows the node's peers and devices from now on. May be
     * called for several registries.
     *
     * @throws IllegalStateException if this binder was closed
     */
    @Override
    public void bindTo(MeterRegistry registry) {
        requireNonNull(registry, "registry");
        synchronized (lock) {
            if (closed) {
                throw new IllegalStateException("these overlay4j metrics were closed");
            }
            if (registration == null) {
                registration = node.addListener(new Follower());
            }
            Bound b = new Bound(registry);
            registerNodeMeters(b);
            for (PeerSource p : peers.values()) {
                b.peerMeters.put(p.subnet, registerPeer(registry, p));
            }
            for (OffloadSource o : offloads.values()) {
                b.offloadMeters.put(o.key, registerOffload(registry, o));
            }
            bound.add(b);
            reconcile();
        }
    }

    /** Removes every meter this binder registered, from every registry, and stops following the node. Idempotent. */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            if (registration != null) {
                registration.close();
            }
            for (Bound b : bound) {
                b.nodeMeters.forEach(b.registry::remove);
                b.peerMeters.values().forEach(ms -> ms.forEach(b.registry::remove));
                b.offloadMeters.values().forEach(ms -> ms.forEach(b.registry::remove));
            }
            bound.clear();
            peers.clear();
            offloads.clear();
        }
    }

    // ---- the snapshot ----

    /** The node's stats, read at most every 100 ms. Never throws. */
    private Snapshot snapshot() {
        Snapshot s = snapshot;
        long now = System.nanoTime();
        if (s != null && now - s.takenAt < SNAPSHOT_NANOS) {
            return s;
        }
        return refresh(now);
    }

    private Snapshot refresh(long now) {
        NodeStats stats;
        try {
            stats = node.nodeStats();
        } catch (RuntimeException e) {
            // nodeStats() does not throw; should it still, keep the last values rather than fail a scrape.
            synchronized (lock) {
                if (!readFailureLogged) {
                    readFailureLogged = true;
                    LOG.warn("reading the stats of {} failed; its meters keep their last values", node, e);
                }
            }
            Snapshot s = snapshot;
            return s != null ? s : new Snapshot(now, new NodeStats(OverlayNode.State.STARTING, null, false,
                    new TrafficStats(0, 0, 0, 0, 0, Map.of()), List.of(), List.of()));
        }
        Snapshot s = new Snapshot(now, stats);
        snapshot = s;
        return s;
    }

    /** One reading of the node, indexed for the per-peer and per-offload meters. */
    private static final class Snapshot {
        final long takenAt;
        final NodeStats stats;
        final Map<Ipv4Prefix, PeerStats> peers = new HashMap<>();
        final Map<String, OffloadStatus> offloads = new HashMap<>();

        Snapshot(long takenAt, NodeStats stats) {
            this.takenAt = takenAt;
            this.stats = stats;
            for (PeerStats p : stats.peers()) {
                peers.put(p.subnet(), p);
            }
            for (OffloadStatus o : stats.offloads()) {
                offloads.put(key(o), o);
            }
        }
    }

    private static String key(OffloadStatus o) {
        return o.device() + "/" + o.feature();
    }

    // ---- following the node's peers and devices ----

    /** Re-reads the node and adds or removes per-peer and offload meters to match. Holds {@link #lock}. */
    private void reconcile() {
        reconciledPeers = node.peers(); // before the snapshot: a change after it is a new list, so a new reconcile
        Snapshot s = refresh(System.nanoTime());
        for (Ipv4Prefix subnet : s.peers.keySet()) {
            if (!peers.containsKey(subnet)) {
                PeerSource p = new PeerSource(subnet, s.peers.get(subnet));
                peers.put(subnet, p);
                for (Bound b : bound) {
                    b.peerMeters.put(subnet, registerPeer(b.registry, p));
                }
            }
        }
        for (Iterator<Ipv4Prefix> it = peers.keySet().iterator(); it.hasNext(); ) {
            Ipv4Prefix subnet = it.next();
            if (!s.peers.containsKey(subnet)) {
                it.remove();
                for (Bound b : bound) {
                    removeAll(b.registry, b.peerMeters.remove(subnet));
                }
            }
        }
        for (Map.Entry<String, OffloadStatus> e : s.offloads.entrySet()) {
            if (!offloads.containsKey(e.getKey())) {
                OffloadSource o = new OffloadSource(e.getKey(), e.getValue());
                offloads.put(e.getKey(), o);
                for (Bound b : bound) {
                    b.offloadMeters.put(o.key, registerOffload(b.registry, o));
                }
            }
        }
        for (Iterator<String> it = offloads.keySet().iterator(); it.hasNext(); ) {
            String key = it.next();
            if (!s.offloads.containsKey(key)) {
                it.remove();
                for (Bound b : bound) {
                    removeAll(b.registry, b.offloadMeters.remove(key));
                }
            }
        }
    }

    private static void removeAll(MeterRegistry registry, List<Meter> meters) {
        if (meters != null) {
            meters.forEach(registry::remove);
        }
    }

    /** Node events that change which peers and devices there are. */
    private final class Follower implements OverlayNode.Listener {
        @Override
        public void stateChanged(OverlayNode.State previous, OverlayNode.State current, OverlayException cause) {
            follow();
        }

        @Override
        public void subnetChanged(Lease previous, Lease current) {
            follow();
        }

        // A batch of peer changes (a resync: one event per peer) publishes one new peer list before its events, so
        // the first event of a batch reconciles the whole batch and the others find that list reconciled already.
        @Override
        public void peerAdded(Lease peer) {
            followPeers();
        }

        @Override
        public void peerRemoved(Lease peer) {
            followPeers();
        }

        private void followPeers() {
            synchronized (lock) {
                if (!closed && node.peers() != reconciledPeers) {
                    reconcile();
                }
            }
        }

        private void follow() {
            synchronized (lock) {
                if (!closed) {
                    reconcile();
                }
            }
        }
    }

    // ---- meters ----

    /** The meters registered with one registry. */
    private static final class Bound {
        final MeterRegistry registry;
        final List<Meter> nodeMeters = new ArrayList<>();
        final Map<Ipv4Prefix, List<Meter>> peerMeters = new HashMap<>();
        final Map<String, List<Meter>> offloadMeters = new HashMap<>();

        Bound(MeterRegistry registry) {
            this.registry = registry;
        }
    }

    private void registerNodeMeters(Bound b) {
        MeterRegistry r = b.registry;
        List<Meter> m = b.nodeMeters;
        for (String direction : DIRECTIONS) {
            boolean egress = direction.equals("egress");
            m.add(counter(r, "overlay4j.packets", "Inner packets forwarded: egress TUN to peers, ingress peers to TUN",
                    null, Tags.of("direction", direction),
                    t -> egress ? t.snapshot().stats.traffic().egressPackets()
                            : t.snapshot().stats.traffic().ingressPackets()));
            m.add(counter(r, "overlay4j.bytes", "Bytes of the inner packets forwarded", "bytes",
                    Tags.of("direction", direction),
                    t -> egress ? t.snapshot().stats.traffic().egressBytes()
                            : t.snapshot().stats.traffic().ingressBytes()));
        }
        m.add(counter(r, "overlay4j.icmp.sent", "ICMP net-unreachable replies written back into the TUN", null,
                Tags.empty(), t -> t.snapshot().stats.traffic().icmpSent()));
        for (DropReason reason : DropReason.values()) {
            m.add(counter(r, "overlay4j.drops", "Dropped packets", null, Tags.of("reason", lower(reason)),
                    t -> t.snapshot().stats.traffic().drops(reason)));
        }
        m.add(gauge(r, "overlay4j.peers", "The other hosts' leases the node routes to", null, Tags.empty(),
                t -> t.node.peers().size()));
        m.add(gauge(r, "overlay4j.lease.remaining", "Seconds until the node's lease expires unless renewed",
                "seconds", Tags.empty(), OverlayNodeMetrics::leaseRemaining));
        m.add(gauge(r, "overlay4j.store.reachable", "1 while the subnet store answers, else 0", null, Tags.empty(),
                t -> storeReachable(t.node.state()) ? 1 : 0));
        for (OverlayNode.State state : OverlayNode.State.values()) {
            m.add(gauge(r, "overlay4j.node.state", "1 for the node's state, 0 for the others", null,
                    Tags.of("state", lower(state)), t -> t.node.state() == state ? 1 : 0));
        }
    }

    /** As {@link NodeStats#storeReachable()}, from the node's state now. */
    private static boolean storeReachable(OverlayNode.State state) {
        return state == OverlayNode.State.READY || state == OverlayNode.State.LEASE_LOST;
    }

    private double leaseRemaining() {
        Instant expiry = snapshot().stats.leaseExpiration();
        if (expiry == null || node.state() == OverlayNode.State.CLOSED) {
            return Double.NaN;
        }
        return Math.max(0, expiry.toEpochMilli() - System.currentTimeMillis()) / 1000.0;
    }

    private List<Meter> registerPeer(MeterRegistry r, PeerSource p) {
        Tags peer = Tags.of("peer", p.subnet.toString());
        List<Meter> m = new ArrayList<>();
        String packets = "Inner packets sent to the peer (egress) and admitted from it (ingress)";
        String bytes = "Bytes of the inner packets sent to the peer and admitted from it";
        m.add(counter(r, "overlay4j.peer.packets", packets, null, peer.and("direction", "egress"),
                t -> p.read(t).egressPackets()));
        m.add(counter(r, "overlay4j.peer.packets", packets, null, peer.and("direction", "ingress"),
                t -> p.read(t).ingressPackets()));
        m.add(counter(r, "overlay4j.peer.bytes", bytes, "bytes", peer.and("direction", "egress"),
                t -> p.read(t).egressBytes()));
        m.add(counter(r, "overlay4j.peer.bytes", bytes, "bytes", peer.and("direction", "ingress"),
                t -> p.read(t).ingressBytes()));
        m.add(gauge(r, "overlay4j.peer.last.seen", "When the last datagram from the peer was admitted, seconds since "
                + "the epoch", "seconds", peer, t -> {
                    Instant seen = p.read(t).lastSeen();
                    return seen == null ? Double.NaN : seen.toEpochMilli() / 1000.0;
                }));
        return m;
    }

    private List<Meter> registerOffload(MeterRegistry r, OffloadSource o) {
        List<Meter> m = new ArrayList<>();
        for (OffloadStatus.Status status : OffloadStatus.Status.values()) {
            m.add(gauge(r, "overlay4j.offload", "1 for the offload's status, 0 for the others", null,
                    Tags.of("device", o.device, "feature", lower(o.feature), "status", lower(status)),
                    t -> o.read(t) == status ? 1 : 0));
        }
        return m;
    }

    private FunctionCounter counter(MeterRegistry r, String name, String description, String unit, Tags extra,
                                    ToDoubleFunction<OverlayNodeMetrics> f) {
        return FunctionCounter.builder(name, this, f).description(description).baseUnit(unit)
                .tags(tags.and(extra)).register(r);
    }

    private Gauge gauge(MeterRegistry r, String name, String description, String unit, Tags extra,
                        ToDoubleFunction<OverlayNodeMetrics> f) {
        return Gauge.builder(name, this, f).description(description).baseUnit(unit).tags(tags.and(extra))
                .strongReference(true).register(r);
    }

    private static String lower(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }

    /** One peer's values; the last ones stay readable if the peer leaves the snapshot before its meters go. */
    private static final class PeerSource {
        final Ipv4Prefix subnet;
        volatile PeerStats last;

        PeerSource(Ipv4Prefix subnet, PeerStats first) {
            this.subnet = subnet;
            this.last = first;
        }

        PeerStats read(OverlayNodeMetrics metrics) {
            PeerStats now = metrics.snapshot().peers.get(subnet);
            if (now != null) {
                last = now;
                return now;
            }
            return last;
        }
    }

    /** One offload's status, kept like {@link PeerSource}. */
    private static final class OffloadSource {
        final String key;
        final String device;
        final OffloadStatus.Feature feature;
        volatile OffloadStatus.Status last;

        OffloadSource(String key, OffloadStatus first) {
            this.key = key;
            this.device = first.device();
            this.feature = first.feature();
            this.last = first.status();
        }

        OffloadStatus.Status read(OverlayNodeMetrics metrics) {
            OffloadStatus now = metrics.snapshot().offloads.get(key);
            if (now != null) {
                last = now.status();
            }
            return last;
        }
    }

    @Override
    public String toString() {
        return "OverlayNodeMetrics[" + node + (tags.stream().findAny().isPresent() ? ", " + tags : "") + "]";
    }
}
