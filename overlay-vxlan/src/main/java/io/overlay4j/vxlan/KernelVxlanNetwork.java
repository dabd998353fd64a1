package io.overlay4j.vxlan;

import io.overlay4j.Backend;
import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OverlayException;
import io.overlay4j.Route;
import io.overlay4j.TrafficStats;
import io.overlay4j.internal.AbstractNetwork;
import io.overlay4j.internal.Cleanup;
import io.overlay4j.internal.WarnOnce;
import io.overlay4j.tun.FdbEntry;
import io.overlay4j.tun.Link;
import io.overlay4j.tun.LinkAddress;
import io.overlay4j.tun.LinkStats;
import io.overlay4j.tun.Neighbour;
import io.overlay4j.tun.NetlinkMonitor;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.VxlanLink;
import io.overlay4j.tun.internal.KernelWatch;
import io.overlay4j.udp.VxlanLeaseData;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kernel data plane of {@link VxlanBackend} for one lease: {@code flannel.<VNI>} and the per-peer neighbour, FDB
 * entry and onlink route (or direct route). Peer changes arrive on the node's control thread; repairs (a deleted
 * device, entries deleted by hand, failed requests) run on this network's own thread; both under {@link #lock}.
 */
final class KernelVxlanNetwork extends AbstractNetwork implements VxlanBackend.VxlanNetwork {
    private static final Logger LOG = LoggerFactory.getLogger(KernelVxlanNetwork.class);
    private static final int ETHERNET_HEADER = 14;
    private static final int EPROTONOSUPPORT = 93;
    private static final int EAFNOSUPPORT = 97;

    /** What is installed for one peer. */
    private record Programmed(Ipv4Prefix subnet, Inet4Address publicIp, String mac, boolean direct, Route route) {
        Inet4Address base() {
            return subnet.network();
        }
    }

    private final VxlanBackend backend;
    private final VxlanConfig config;
    private final Ipv4Prefix network;
    private final String device;
    private final String underlay;
    private final Inet4Address publicIp;
    private final NetlinkRouteProgrammer nl;
    private final Map<Ipv4Prefix, Programmed> programmed = new TreeMap<>();
    /** Peers whose last programming failed, retried by the repair thread. */
    private final Map<Ipv4Prefix, Lease> pending = new TreeMap<>();
    private final WarnOnce warnings = new WarnOnce(LOG);
    private KernelWatch watch;
    private String mac;
    private boolean createdDevice;
    private ScheduledFuture<?> resync;
    private Duration backoff;

    private KernelVxlanNetwork(VxlanBackend backend, Backend.Context context, VxlanConfig config,
                               NetlinkRouteProgrammer nl) {
        super(config.deviceMtu(context.interfaceMtu()));
        this.backend = backend;
        this.config = config;
        this.network = context.config().network();
        this.device = config.deviceName();
        this.underlay = context.interfaceName();
        this.publicIp = context.publicAddress();
        this.nl = nl;
        this.backoff = backend.options.minBackoff();
    }

    /** Sets the device up, acquires the lease and starts watching the kernel; cleans up if any step fails. */
    static KernelVxlanNetwork register(VxlanBackend backend, Backend.Context context, VxlanConfig config)
            throws IOException {
        NetlinkRouteProgrammer nl = NetlinkRouteProgrammer.open();
        KernelVxlanNetwork n = new KernelVxlanNetwork(backend, context, config, nl);
        try {
            n.setUp(context);
            return n;
        } catch (IOException | RuntimeException | Error e) {
            KernelWatch.shutDown(n.watch, () -> {
                if (n.createdDevice) {
                    n.quietly("delete " + n.device + " after a failed start", () -> nl.deleteLink(n.device));
                }
            }, nl);
            throw e;
        }
    }

    private void setUp(Backend.Context context) throws IOException {
        LOG.info("VXLAN config: VNI={} Port={} GBP={} Learning={} DirectRouting={} MTU={}", config.vni(),
                config.port(), config.gbp(), config.learning(), config.directRouting(), config.baseMtu(
                        context.interfaceMtu()));
        mac = ensureDevice(null);
        LeaseAttributes attributes = new LeaseAttributes(publicIp, null, VxlanBackend.TYPE,
                new VxlanLeaseData(config.vni(), mac).toJson());
        acquireLease(context, attributes);
        configureDevice();
        // Repairs run on a thread of their own from the node's factory (so in the node's network namespace).
        watch = KernelWatch.start("repair thread of " + device, context.threadFactory());
        watch.follow("overlay4j-vxlan-monitor-" + device, EnumSet.allOf(NetlinkMonitor.Group.class),
                new KernelListener(), context.threadFactory());
        // The device may have gone between configuring it and watching it.
        if (nl.vxlanLink(device).isEmpty()) {
            scheduleResync("device vanished during start", Duration.ZERO);
        }
        LOG.info("vxlan backend up: {} (VNI {}, port {}, local {}, MTU {}, VtepMAC {}), address {}/32", device,
                config.vni(), config.effectivePort(), publicIp.getHostAddress(), mtu(), mac,
                lease().subnet().network().getHostAddress());
    }

    // ---- the device ----------------------------------------------------------------------------------------

    /**
     * Creates {@code flannel.<VNI>}, or reuses a compatible one (keeping its MAC) or replaces an incompatible one, as
     * flannel's {@code ensureLink}. Returns the device's MAC.
     *
     * @param wantMac the MAC to create the device with, or {@code null} for a random one
     */
    private String ensureDevice(String wantMac) throws IOException {
        int underlayIndex = nl.linkIndex(underlay);
        VxlanLink want = VxlanLink.request(device, config.vni(), underlayIndex, publicIp, config.port(),
                config.learning(), config.gbp(), mtu(), wantMac != null ? wantMac : VxlanLeaseData.randomMac());
        try {
            if (Boolean.getBoolean(VxlanBackend.REFUSE_KERNEL_DEVICE_PROPERTY)) {
                // what RTM_NEWLINK answers where the vxlan module is missing and cannot be loaded
                throw new ErrnoException("RTM_NEWLINK " + device + " type vxlan id " + config.vni() + " (refused: "
                        + VxlanBackend.REFUSE_KERNEL_DEVICE_PROPERTY + ")", ErrnoException.EOPNOTSUPP);
            }
            nl.createVxlan(want);
            createdDevice = true;
            LOG.info("created {}", want);
        } catch (ErrnoException e) {
            if (meansNoVxlan(e.errno())) {
                throw new NoKernelVxlanException("the kernel cannot create the vxlan device " + device + " (is the "
                        + "vxlan module available?): " + e.getMessage(), e);
            }
            if (e.errno() != ErrnoException.EEXIST) {
                throw deviceError("cannot create " + device, e);
            }
            Optional<Link> existing = nl.link(device);
            Optional<VxlanLink> vxlan = nl.vxlanLink(device);
            String why = existing.isEmpty() ? null : incompatibility(want, existing.get(), vxlan.orElse(null));
            if (existing.isEmpty()) {
                nl.createVxlan(want); // it went away in between
                createdDevice = true;
            } else if (why == null) {
                LOG.info("reusing the existing {} (MAC {})", device, vxlan.get().mac());
                if (vxlan.get().mtu() != mtu()) {
                    LOG.info("setting {}'s MTU from {} to {}", device, vxlan.get().mtu(), mtu());
                    nl.setMtu(device, mtu());
                }
            } else {
                LOG.warn("{} already exists with incompatible configuration: {}; recreating device", device, why);
                nl.deleteLink(device);
                try {
                    nl.createVxlan(want);
                    createdDevice = true;
                } catch (ErrnoException again) {
                    throw deviceError("cannot create " + device + " after deleting the incompatible one", again);
                }
            }
        }
        VxlanLink now = nl.vxlanLink(device).orElseThrow(() -> new OverlayException(OverlayException.Kind.DEVICE,
                "created vxlan device " + device + " is gone or not a vxlan device"));
        if (wantMac != null && !wantMac.equals(now.mac())) {
            nl.setMacAddress(device, wantMac);
            return wantMac;
        }
        return now.mac();
    }

    /** flannel's {@code vxlanLinksIncompat}: why an existing device cannot be reused, or {@code null}. */
    static String incompatibility(VxlanLink want, Link link, VxlanLink have) {
        if (have == null) {
            return "link type: vxlan vs " + (link.kind().isEmpty() ? "(none)" : link.kind());
        }
        if (want.vni() != have.vni()) {
            return "vni: " + want.vni() + " vs " + have.vni();
        }
        if (want.underlayIndex() > 0 && have.underlayIndex() > 0 && want.underlayIndex() != have.underlayIndex()) {
            return "vtep (external) interface: " + want.underlayIndex() + " vs " + have.underlayIndex();
        }
        if (want.local() != null && have.local() != null && !want.local().equals(have.local())) {
            return "vtep (external) IP: " + want.local().getHostAddress() + " vs " + have.local().getHostAddress();
        }
        if (want.group() != null && have.group() != null && !want.group().equals(have.group())) {
            return "group address: " + want.group().getHostAddress() + " vs " + have.group().getHostAddress();
        }
        if (want.l2miss() != have.l2miss()) {
            return "l2miss: " + want.l2miss() + " vs " + have.l2miss();
        }
        if (want.port() > 0 && have.port() > 0 && want.port() != have.port()) {
            return "port: " + want.port() + " vs " + have.port();
        }
        if (want.gbp() != have.gbp()) {
            return "gbp: " + want.gbp() + " vs " + have.gbp();
        }
        return null;
    }

    /**
     * flannel's {@code Configure}: exactly one address inside the network on the device, {@code <subnet base>/32};
     * IPv6 router advertisements off; the device up; and its MAC the one published.
     */
    private void configureDevice() throws IOException {
        Inet4Address base = lease().subnet().network();
        int index = nl.linkIndex(device);
        boolean present = false;
        for (LinkAddress a : nl.ipv4Addresses()) {
            if (a.index() != index) {
                continue;
            }
            if (a.address().equals(base) && a.prefixLength() == 32) {
                present = true;
            } else if (network.contains(a.address())) {
                nl.deleteAddress(device, a.address(), a.prefixLength());
                LOG.info("removed IP address {} from {}", a, device);
            }
        }
        if (!present) {
            nl.addAddress(device, base, 32);
        }
        try {
            Files.writeString(Path.of("/proc/sys/net/ipv6/conf", device, "accept_ra"), "0");
        } catch (IOException | RuntimeException e) {
            LOG.debug("cannot set accept_ra of {} (IPv6 off?): {}", device, e.toString());
        }
        nl.setLinkUp(device);
        String have = nl.vxlanLink(device).map(VxlanLink::mac).orElse("(gone)");
        if (!have.equals(mac)) {
            throw new OverlayException(OverlayException.Kind.DEVICE, device + "'s mac address wanted: " + mac
                    + ", but got: " + have);
        }
    }

    /**
     * Whether an errno from creating a vxlan device says the kernel has no vxlan at all (the module missing and not
     * loadable, a kernel built without it), rather than that this request failed.
     */
    static boolean meansNoVxlan(int errno) {
        return errno == ErrnoException.EOPNOTSUPP || errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT;
    }

    /** The kernel refused to create a vxlan device as one without vxlan support does: {@code DEVICE}. */
    static final class NoKernelVxlanException extends OverlayException {
        private static final long serialVersionUID = 1L;

        NoKernelVxlanException(String message, ErrnoException cause) {
            super(Kind.DEVICE, message, cause);
        }
    }

    private static OverlayException deviceError(String what, IOException e) {
        return new OverlayException(OverlayException.Kind.DEVICE, what + ": " + e.getMessage(), e);
    }

    // ---- Backend.Network -----------------------------------------------------------------------------------

    @Override
    public VxlanBackend.DataPlane dataPlane() {
        return VxlanBackend.DataPlane.KERNEL;
    }

    @Override
    protected void applyPeers(List<LeaseEvent> events) {
        dispatch(events, this::add, this::remove);
    }

    @Override
    protected void replacePeers(List<Lease> peers) {
        Set<Ipv4Prefix> want = removeMissing(programmed.keySet(), peers, this::remove);
        pending.keySet().retainAll(want);
        for (Lease l : peers) {
            add(l);
        }
        try {
            removeStaleEntries();
        } catch (IOException | RuntimeException e) {
            LOG.warn("cannot clean up stale entries on {}: {}", device, e.toString());
        }
    }

    /** The number of peers currently programmed. */
    @Override
    public int peerCount() {
        synchronized (lock) {
            return programmed.size();
        }
    }

    /** Kernel counters of {@code flannel.<VNI>}: frames minus their Ethernet header, so inner IP bytes. */
    @Override
    public TrafficStats stats() {
        try {
            LinkStats s = nl.linkStats(device);
            return new TrafficStats(s.txPackets(), s.txBytes() - ETHERNET_HEADER * s.txPackets(), s.rxPackets(),
                    s.rxBytes() - ETHERNET_HEADER * s.rxPackets(), 0, Map.of());
        } catch (IOException e) {
            return new TrafficStats(0, 0, 0, 0, 0, Map.of());
        }
    }

    /**
     * Stops following the kernel. Leaves {@code flannel.<VNI>} and every peer's entries in place (flanneld's
     * behaviour) unless the backend was built with {@code cleanUpOnClose}, which deletes the device and the direct
     * routes.
     */
    @Override
    protected void release() {
        KernelWatch.shutDown(watch, this::finish, nl);
    }

    private void finish() {
        if (backend.options.cleanUpOnClose()) {
            synchronized (lock) {
                for (Programmed p : programmed.values()) {
                    if (p.direct()) {
                        quietly("delete route " + p.route(), () -> nl.deleteRoute(p.route()));
                    }
                }
                programmed.clear();
            }
            quietly("delete " + device, () -> nl.deleteLink(device));
            LOG.info("removed {} and its peers' entries", device);
        } else {
            LOG.info("left {} and {} peers' entries in place (as flanneld does)", device, programmed.size());
        }
    }

    @Override
    public String toString() {
        return "vxlan network " + device + " lease " + leaseText();
    }

    // ---- peers ---------------------------------------------------------------------------------------------

    /** Programs a peer's lease (create or replace); called with {@link #lock} held. */
    private void add(Lease peer) {
        Ipv4Prefix subnet = peer.subnet();
        LeaseAttributes a = peer.attributes();
        VxlanLeaseData data = backend.peerData(peer, warnings, false);
        if (data == null) {
            forget(subnet);
            return;
        }
        if (data.vni() != config.vni()) {
            warnings.warn("vni " + subnet + " " + data.vni(), "peer {} publishes VNI {} but this node's is {}; "
                    + "programming it as flanneld does, but no traffic will pass until the VNIs agree", subnet,
                    data.vni(), config.vni());
        }
        Programmed want;
        try {
            want = plan(subnet, a.publicIp(), data.vtepMac());
        } catch (IOException e) {
            failed(peer, "cannot look up the route to " + a.publicIp().getHostAddress(), e);
            return;
        }
        Programmed old = programmed.get(subnet);
        if (old != null && !old.equals(want)) {
            retire(old, want);
        }
        try {
            program(want);
            programmed.put(subnet, want);
            pending.remove(subnet);
            LOG.debug("programmed peer {}", want);
        } catch (IOException | RuntimeException e) {
            programmed.remove(subnet);
            failed(peer, "cannot program peer " + subnet, e);
        }
    }

    /** What to install for a peer: the vxlan entries, or with DirectRouting a direct route if it is on our link. */
    private Programmed plan(Ipv4Prefix subnet, Inet4Address peerIp, String peerMac) throws IOException {
        if (config.directRouting()) {
            Optional<Route> r = nl.routeGet(peerIp);
            if (r.isPresent() && r.get().gateway() == null && !r.get().device().isEmpty()) {
                return new Programmed(subnet, peerIp, peerMac, true,
                        Route.viaGateway(subnet, peerIp, r.get().device()));
            }
        }
        return new Programmed(subnet, peerIp, peerMac, false, Route.onlink(subnet, subnet.network(), device));
    }

    /**
     * Installs a peer's entries in flannel's order (the route last: the kernel would ARP for the gateway otherwise),
     * removing the earlier ones if a later step fails.
     */
    private void program(Programmed p) throws IOException {
        if (p.direct()) {
            nl.replaceRoute(p.route());
            return;
        }
        nl.replaceNeighbour(device, p.base(), p.mac());
        try {
            nl.replaceFdbEntry(device, p.mac(), p.publicIp());
        } catch (IOException | RuntimeException e) {
            quietly("delete neighbour " + p.base().getHostAddress(), () -> nl.deleteNeighbour(device, p.base()));
            throw e;
        }
        try {
            nl.replaceRoute(p.route());
        } catch (IOException | RuntimeException e) {
            quietly("delete neighbour " + p.base().getHostAddress(), () -> nl.deleteNeighbour(device, p.base()));
            quietly("delete FDB entry " + p.mac(), () -> nl.deleteFdbEntry(device, p.mac(), p.publicIp()));
            throw e;
        }
    }

    /** Removes what a peer's previous programming left that {@code next} will not overwrite (a changed MAC, ...). */
    private void retire(Programmed old, Programmed next) {
        if (old.direct()) {
            return; // the next route replaces the direct one: same destination
        }
        if (next.direct() || !old.mac().equals(next.mac()) || !old.publicIp().equals(next.publicIp())) {
            quietly("delete FDB entry " + old.mac(), () -> nl.deleteFdbEntry(device, old.mac(), old.publicIp()));
        }
        if (next.direct()) {
            quietly("delete neighbour " + old.base().getHostAddress(), () -> nl.deleteNeighbour(device, old.base()));
        }
    }

    /** Removes a peer's entries (flannel's order: neighbour, FDB entry, route), each even if another fails. */
    private void remove(Ipv4Prefix subnet) {
        pending.remove(subnet);
        Programmed p = programmed.remove(subnet);
        if (p == null) {
            return;
        }
        unprogram(p);
        LOG.debug("removed peer {}", p);
    }

    /** Drops a peer whose lease can no longer be programmed (another type, malformed): its old entries go. */
    private void forget(Ipv4Prefix subnet) {
        if (programmed.containsKey(subnet)) {
            remove(subnet);
        }
        pending.remove(subnet);
    }

    private void unprogram(Programmed p) {
        if (p.direct()) {
            quietly("delete route " + p.route(), () -> nl.deleteRoute(p.route()));
            return;
        }
        quietly("delete neighbour " + p.base().getHostAddress(), () -> nl.deleteNeighbour(device, p.base()));
        quietly("delete FDB entry " + p.mac(), () -> nl.deleteFdbEntry(device, p.mac(), p.publicIp()));
        quietly("delete route " + p.route(), () -> nl.deleteRoute(p.route()));
    }

    /**
     * Removes entries on the device that no current peer explains: left by peers that went away while no node was
     * following (a restart), or by an earlier configuration. Only permanent neighbours, own FDB entries and non-kernel
     * routes into the network are considered; with DirectRouting, also routes into the network via the underlay.
     */
    private void removeStaleEntries() throws IOException {
        Set<Inet4Address> bases = new HashSet<>();
        Set<String> fdb = new HashSet<>();
        for (Programmed p : programmed.values()) {
            if (!p.direct()) {
                bases.add(p.base());
                fdb.add(p.mac() + " " + p.publicIp().getHostAddress());
            }
        }
        for (Lease l : pending.values()) {
            bases.add(l.subnet().network());
        }
        if (nl.vxlanLink(device).isEmpty()) {
            return;
        }
        for (Neighbour n : nl.neighbours(device)) {
            if (n.isPermanent() && network.contains(n.address()) && !bases.contains(n.address())) {
                LOG.info("removing stale neighbour {}", n);
                quietly("delete neighbour " + n, () -> nl.deleteNeighbour(device, n.address()));
            }
        }
        for (FdbEntry f : nl.fdbEntries(device)) {
            if (f.isSelf() && f.isPermanent() && f.destination() != null
                    && !fdb.contains(f.mac() + " " + f.destination().getHostAddress())
                    && !f.mac().equals("00:00:00:00:00:00")) {
                LOG.info("removing stale FDB entry {}", f);
                quietly("delete FDB entry " + f, () -> nl.deleteFdbEntry(device, f.mac(), f.destination()));
            }
        }
        for (Route r : nl.routes()) {
            boolean ours = r.device().equals(device) || (config.directRouting() && r.device().equals(underlay)
                    && r.gateway() != null);
            if (ours && !r.kernel() && network.contains(r.destination()) && !r.destination().equals(network)
                    && !programmed.containsKey(r.destination()) && !pending.containsKey(r.destination())) {
                LOG.info("removing stale route {}", r);
                quietly("delete route " + r, () -> nl.deleteRoute(r));
            }
        }
    }

    private void failed(Lease peer, String what, Exception e) {
        backend.failures.incrementAndGet();
        pending.put(peer.subnet(), peer);
        LOG.warn("{}: {}; retrying", what, e.toString());
        scheduleResync("retry " + peer.subnet(), backoff);
    }

    // ---- repairs -------------------------------------------------------------------------------------------

    /** Reacts to the kernel: only schedules work, on the repair thread. */
    private final class KernelListener implements NetlinkMonitor.Listener {
        @Override
        public void linkDeleted(Link link) {
            if (link.name().equals(device)) {
                LOG.warn("{} was deleted; recreating it", device);
                scheduleResync("device deleted", Duration.ZERO);
            }
        }

        @Override
        public void linkChanged(Link link) {
            if (link.name().equals(device) && !link.isUp()) {
                // also seen just before a deletion, and while a recreated device is still down: the resync sorts it
                LOG.debug("{} is down", device);
                scheduleResync("device down", Duration.ZERO);
            }
        }

        @Override
        public void routeDeleted(Route route) {
            scheduleRepair(route.destination());
        }

        @Override
        public void neighbourDeleted(Neighbour neighbour) {
            if (neighbour.device().equals(device)) {
                scheduleRepair(Ipv4Prefix.of(neighbour.address(), 32));
            }
        }

        @Override
        public void fdbDeleted(FdbEntry entry) {
            if (entry.device().equals(device) && entry.isSelf()) {
                scheduleRepair(null);
            }
        }

        @Override
        public void eventsLost() {
            scheduleResync("kernel notifications lost", Duration.ZERO);
        }
    }

    /**
     * Puts back the entries of the peer owning {@code key} (its subnet, or a /32 of its base address), if they are
     * missing; {@code null} checks every peer's FDB entry.
     */
    private void scheduleRepair(Ipv4Prefix key) {
        try {
            watch.worker().execute(() -> repair(key));
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // closing
        }
    }

    private void repair(Ipv4Prefix key) {
        synchronized (lock) {
            if (isClosed()) {
                return;
            }
            try {
                List<Programmed> affected = new ArrayList<>();
                for (Programmed p : programmed.values()) {
                    if (key == null || p.subnet().equals(key)
                            || (key.length() == 32 && p.base().equals(key.network()))) {
                        affected.add(p);
                    }
                }
                if (affected.isEmpty()) {
                    return;
                }
                Set<Route> routes = new HashSet<>(nl.routes());
                Set<Inet4Address> neighbours = new HashSet<>();
                Set<String> fdb = new HashSet<>();
                if (nl.vxlanLink(device).isPresent()) {
                    for (Neighbour n : nl.neighbours(device)) {
                        if (n.isPermanent()) {
                            neighbours.add(n.address());
                        }
                    }
                    for (FdbEntry f : nl.fdbEntries(device)) {
                        if (f.destination() != null) {
                            fdb.add(f.mac() + " " + f.destination().getHostAddress());
                        }
                    }
                } else {
                    return; // the device is gone: the link notification brings a full resync
                }
                for (Programmed p : affected) {
                    boolean missing = !routes.contains(p.route()) || (!p.direct()
                            && (!neighbours.contains(p.base())
                            || !fdb.contains(p.mac() + " " + p.publicIp().getHostAddress())));
                    if (missing) {
                        LOG.warn("entries of peer {} were removed from the kernel; putting them back", p.subnet());
                        program(p);
                        backend.repairs.incrementAndGet();
                    }
                }
            } catch (IOException | RuntimeException e) {
                backend.failures.incrementAndGet();
                LOG.warn("repairing peer entries on {} failed: {}; resyncing", device, e.toString());
                scheduleResync("repair failed", backoff);
            }
        }
    }

    private void scheduleResync(String why, Duration delay) {
        synchronized (lock) {
            if (isClosed() || (resync != null && !resync.isDone())) {
                return;
            }
            try {
                resync = watch.worker().schedule(() -> resync(why), delay.toMillis(), TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                // closing
            }
        }
    }

    /**
     * Makes the kernel match what this network wants: the device (recreated with the published MAC if it was deleted
     * or altered), its address and up state, and every peer's entries. Retries with backoff on failure.
     */
    private void resync(String why) {
        synchronized (lock) {
            if (isClosed()) {
                return;
            }
            resync = null;
            try {
                Optional<VxlanLink> have = nl.vxlanLink(device);
                boolean recreate = have.isEmpty() || !mac.equals(have.get().mac())
                        || incompatibility(VxlanLink.request(device, config.vni(), nl.linkIndex(underlay), publicIp,
                        config.port(), config.learning(), config.gbp(), mtu(), mac), nl.link(device).orElseThrow(),
                        have.get()) != null;
                if (recreate) {
                    ensureDevice(mac);
                    backend.recreations.incrementAndGet();
                }
                boolean wasDown = !nl.isUp(device);
                configureDevice();
                if (recreate || wasDown) {
                    LOG.warn("{} is set up again ({}); programming {} peers", device, why,
                            programmed.size() + pending.size());
                }
                List<Lease> retry = new ArrayList<>(pending.values());
                for (Programmed p : new ArrayList<>(programmed.values())) {
                    program(p);
                }
                for (Lease l : retry) {
                    add(l);
                }
                if (pending.isEmpty()) {
                    backoff = backend.options.minBackoff();
                }
            } catch (IOException | RuntimeException e) {
                backend.failures.incrementAndGet();
                Duration next = backoff;
                backoff = backoff.multipliedBy(2);
                if (backoff.compareTo(backend.options.maxBackoff()) > 0) {
                    backoff = backend.options.maxBackoff();
                }
                LOG.warn("setting {} up again ({}) failed: {}; retrying in {} ms", device, why, e.toString(),
                        next.toMillis());
                scheduleResync(why, next);
            }
        }
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    private void quietly(String what, Cleanup.Step step) {
        Cleanup.quietly(LOG, backend.failures, what, step);
    }
}
