package io.overlay4j.vxlan;

import io.overlay4j.Backend;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OffloadStatus;
import io.overlay4j.OverlayException;
import io.overlay4j.PeerStats;
import io.overlay4j.Route;
import io.overlay4j.TrafficStats;
import io.overlay4j.TunOptions;
import io.overlay4j.tun.Link;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.Forwarder;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.VxlanEncapsulator;
import io.overlay4j.udp.VxlanLeaseData;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The userspace data plane of {@link VxlanBackend} for one lease: a TUN device carried by overlay-udp's
 * {@link Forwarder} with a {@link VxlanEncapsulator}, so that every VXLAN frame is built and checked in this JVM and
 * kernel VXLAN peers (flanneld's or overlay4j's) see an ordinary VTEP.
 *
 * <p>Set up as flannel's udp backend sets up its TUN (flannel-facts §3.3), with vxlan's numbers (§4): the TUN
 * (default name {@code flannel.<VNI>}) with MTU = underlay MTU (or the config's {@code MTU}) − 50 and the address
 * {@code <subnet base>/32}, the route {@code <Network> dev <tun>}, a UDP socket on the underlay address and the
 * config's {@code Port} (0: 8472), and the lease {@code {"VNI":…,"VtepMAC":"…"}} a kernel node publishes. Peer changes
 * arrive on the node's control thread (under {@link #lock}); the forwarder's two threads come from the node's factory.
 */
final class UserspaceVxlanNetwork implements VxlanBackend.VxlanNetwork {
    private static final Logger LOG = LoggerFactory.getLogger(UserspaceVxlanNetwork.class);
    private static final int SOCKET_BUFFER_SIZE = 4 << 20;
    private static final int MAX_WARNED = 1024;
    private static final byte[] MAC_SEED_LABEL = "overlay4j userspace VTEP".getBytes(StandardCharsets.US_ASCII);

    private final VxlanBackend backend;
    private final VxlanConfig config;
    private final Ipv4Prefix network;
    private final Inet4Address publicIp;
    private final int port;
    private final int mtu;
    private final String underlay;
    private final Object lock = new Object();
    /** DirectRouting: the routes installed for peers the kernel reaches without a gateway. */
    private final Map<Ipv4Prefix, Route> direct = new TreeMap<>();
    private final Set<String> warned = new HashSet<>();
    private NetlinkRouteProgrammer nl;
    private LinuxTunDevice tun;
    private UdpSocket socket;
    private Forwarder forwarder;
    private Route networkRoute;
    private Lease lease;
    private String mac;
    private boolean closed;

    private UserspaceVxlanNetwork(VxlanBackend backend, Backend.Context context, VxlanConfig config) {
        this.backend = backend;
        this.config = config;
        this.network = context.config().network();
        this.publicIp = context.publicAddress();
        this.port = config.effectivePort();
        this.mtu = config.deviceMtu(context.interfaceMtu());
        this.underlay = context.interfaceName();
    }

    /**
     * Sets the TUN, socket and forwarder up, acquires the lease and routes the network into the TUN; cleans up if any
     * step fails.
     *
     * @throws OverlayException {@code CONFIG_INVALID} for {@code GBP}, which this data plane cannot speak
     */
    static UserspaceVxlanNetwork register(VxlanBackend backend, Backend.Context context, VxlanConfig config)
            throws IOException {
        if (config.gbp()) {
            throw new OverlayException(OverlayException.Kind.CONFIG_INVALID, "the userspace vxlan data plane cannot "
                    + "speak VXLAN Group Based Policy (GBP: true in the network config); use the kernel data plane");
        }
        UserspaceVxlanNetwork n = new UserspaceVxlanNetwork(backend, context, config);
        try {
            n.setUp(context);
            return n;
        } catch (IOException | RuntimeException | Error e) {
            n.cleanUp(e);
            throw e;
        }
    }

    private void setUp(Backend.Context context) throws IOException {
        VxlanBackend.Options options = backend.options;
        String name = options.tunName() != null ? options.tunName() : config.deviceName();
        mac = options.vtepMac() != null ? options.vtepMac() : derivedMac(config.vni(), publicIp);
        VxlanEncapsulator vx = VxlanEncapsulator.of(config.vni(), mac);
        LOG.info("VXLAN config (userspace data plane): VNI={} Port={} DirectRouting={} MTU={}{}", config.vni(),
                config.port(), config.directRouting(), config.baseMtu(context.interfaceMtu()),
                config.learning() ? " (Learning has no meaning here: peers are known from their leases)" : "");
        nl = NetlinkRouteProgrammer.open();
        removeKernelDevice(name);
        tun = LinuxTunDevice.open(new TunOptions(name, mtu).withOffloads(options.offloads()));
        InetSocketAddress bind = new InetSocketAddress(context.interfaceAddress(), port);
        socket = UdpSocket.open(bind, UdpSocket.Options.builder().sendBufferSize(SOCKET_BUFFER_SIZE)
                .receiveBufferSize(SOCKET_BUFFER_SIZE).gro(options.offloads()).build());
        lease = context.acquireLease(new LeaseAttributes(publicIp, null, VxlanBackend.TYPE,
                new VxlanLeaseData(config.vni(), mac).toJson()));
        Ipv4Prefix own = lease.subnet();
        nl.addAddress(tun.name(), own.network(), 32);
        nl.setLinkUp(tun.name());
        Route route = Route.viaDevice(network, tun.name());
        nl.replaceRoute(route);
        networkRoute = route;
        Forwarder f = Forwarder.builder()
                .tun(tun)
                .socket(socket)
                .ownsSocket(true) // closing it wakes the receiver, also where loopback is down
                .encapsulator(vx)
                .port(port)
                .mtu(mtu)
                .ownSubnet(own)
                .network(network)
                .admitAnySenderAddress(options.admitAnySenderAddress())
                .threadFactory(context.threadFactory())
                .build();
        forwarder = f;
        f.start();
        LOG.info("vxlan backend up, userspace data plane: {} (VNI {}, port {}, VtepMAC {}, MTU {}, offloads {}: "
                        + "virtio header {}, GSO {}, GRO {}), address {}/32, route {}, socket {}", tun.name(),
                config.vni(), port, mac, mtu, options.offloads() ? "asked" : "off", f.vnetHeader(),
                socket.gsoSupported(), socket.groEnabled(), own.network().getHostAddress(), route, bind);
        if (options.admitAnySenderAddress()) {
            LOG.warn("vxlan on {} admits datagrams from any sender address (peers behind NAT)", tun.name());
        }
    }

    /**
     * A {@code flannel.<VNI>} vxlan device left by a kernel data plane (flanneld leaves it on exit) would hold the
     * port and route the peers past the TUN: this data plane takes over its role, so it goes.
     */
    private void removeKernelDevice(String tunName) throws IOException {
        for (String name : new String[] {config.deviceName(), tunName}) {
            Optional<Link> link = nl.link(name);
            if (link.isPresent() && link.get().kind().equals("vxlan")) {
                LOG.warn("deleting the kernel vxlan device {} (left by a kernel data plane): the userspace data plane "
                        + "takes over its port {} and its peers' routes", name, port);
                nl.deleteLink(name);
            }
        }
    }

    /**
     * The VtepMAC of a userspace VTEP when none is configured: derived from the VNI and the public address, so a
     * restarted node publishes the same MAC (as a kernel node keeps its device's) without any state on disk, and
     * nodes with different addresses practically never share one. SHA-256 of a fixed label, the VNI and the
     * address; the first 6 bytes, made a locally administered unicast MAC as flannel makes its random ones.
     */
    static String derivedMac(int vni, Inet4Address publicIp) {
        byte[] digest;
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(MAC_SEED_LABEL);
            sha.update(ByteBuffer.allocate(4).putInt(vni).array());
            sha.update(publicIp.getAddress());
            digest = sha.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JVM has no SHA-256", e);
        }
        digest[0] = (byte) ((digest[0] & 0xfe) | 0x02);
        StringBuilder sb = new StringBuilder(17);
        for (int i = 0; i < 6; i++) {
            if (i > 0) {
                sb.append(':');
            }
            sb.append(Character.forDigit((digest[i] >> 4) & 0xf, 16)).append(Character.forDigit(digest[i] & 0xf, 16));
        }
        return sb.toString();
    }

    // ---- Backend.Network -----------------------------------------------------------------------------------

    @Override
    public Lease lease() {
        return lease;
    }

    @Override
    public int mtu() {
        return mtu;
    }

    @Override
    public VxlanBackend.DataPlane dataPlane() {
        return VxlanBackend.DataPlane.USERSPACE;
    }

    @Override
    public void peersChanged(List<LeaseEvent> events) {
        synchronized (lock) {
            if (closed) {
                return;
            }
            List<LeaseEvent> usable = new ArrayList<>(events.size());
            for (LeaseEvent e : events) {
                if (e.type() == LeaseEvent.Type.ADDED && usable(e.lease())) {
                    usable.add(e);
                    routeDirectly(e.lease());
                } else {
                    // a removed lease, or one that turned unusable: its old peer entry and direct route go
                    usable.add(LeaseEvent.removed(e.lease()));
                    unrouteDirectly(e.lease().subnet());
                }
            }
            forwarder.peersChanged(usable);
        }
    }

    @Override
    public void resetPeers(List<Lease> peers) {
        synchronized (lock) {
            if (closed) {
                return;
            }
            List<Lease> usable = new ArrayList<>(peers.size());
            for (Lease l : peers) {
                if (usable(l)) {
                    usable.add(l);
                }
            }
            Set<Ipv4Prefix> keep = new HashSet<>();
            for (Lease l : usable) {
                keep.add(l.subnet());
            }
            for (Ipv4Prefix s : new ArrayList<>(direct.keySet())) {
                if (!keep.contains(s)) {
                    unrouteDirectly(s);
                }
            }
            for (Lease l : usable) {
                routeDirectly(l);
            }
            forwarder.resetPeers(usable);
        }
    }

    /**
     * Whether a peer's lease goes to the forwarder, as the kernel data plane decides it: another backend type is
     * ignored (counted, as flanneld ignores it), malformed BackendData or a VtepMAC no VTEP can have is skipped
     * (counted); another VNI is passed on, and the forwarder's peer table skips and lists it.
     */
    private boolean usable(Lease peer) {
        LeaseAttributes a = peer.attributes();
        if (!VxlanBackend.TYPE.equals(a.backendType())) {
            backend.ignored.incrementAndGet();
            warnOnce("type " + peer.subnet() + " " + a.backendType(), "ignoring non-vxlan subnet {} at {}: type={}",
                    peer.subnet(), a.publicIp().getHostAddress(), a.backendType());
            return false;
        }
        try {
            VxlanLeaseData data = VxlanLeaseData.parse(a.backendData());
            if (!data.unicastMac()) {
                throw new IllegalArgumentException("VtepMAC " + data.vtepMac() + " is not a unicast address");
            }
        } catch (IllegalArgumentException e) {
            backend.malformed.incrementAndGet();
            warnOnce("data " + peer.subnet() + " " + a.backendData(), "skipping the vxlan lease of {} at {}: {}",
                    peer.subnet(), a.publicIp().getHostAddress(), e.getMessage());
            return false;
        }
        return true; // another VNI: the peer table skips it, logged with the reason, until the VNIs agree
    }

    /**
     * DirectRouting (flannel-facts §4): a peer whose public address the kernel reaches without a gateway gets
     * {@code <subnet> via <PublicIP>}, which is more specific than the network's route into the TUN. The peer stays in
     * the forwarder, so VXLAN from it is still admitted.
     */
    private void routeDirectly(Lease peer) {
        if (!config.directRouting()) {
            return;
        }
        Ipv4Prefix subnet = peer.subnet();
        Inet4Address ip = peer.attributes().publicIp();
        try {
            Optional<Route> via = nl.routeGet(ip);
            Route want = via.isPresent() && via.get().gateway() == null && !via.get().device().isEmpty()
                    && !via.get().device().equals(tun.name()) ? Route.viaGateway(subnet, ip, via.get().device()) : null;
            Route old = direct.get(subnet);
            if (old != null && !old.equals(want)) {
                unrouteDirectly(subnet);
            }
            if (want != null) {
                nl.replaceRoute(want);
                direct.put(subnet, want);
            }
        } catch (IOException | RuntimeException e) {
            backend.failures.incrementAndGet();
            LOG.warn("cannot route {} directly via {}: {}; it is reached through VXLAN", subnet,
                    ip.getHostAddress(), e.toString());
        }
    }

    private void unrouteDirectly(Ipv4Prefix subnet) {
        Route r = direct.remove(subnet);
        if (r != null) {
            quietly("delete route " + r, () -> nl.deleteRoute(r));
        }
    }

    @Override
    public int peerCount() {
        Forwarder f = forwarder;
        return f == null ? 0 : f.peers().size();
    }

    /** The forwarder's peer table (tests, diagnostics). */
    PeerTable peers() {
        return forwarder.peers();
    }

    /** The VtepMAC this node publishes. */
    String vtepMac() {
        return mac;
    }

    /** The forwarder's counters: inner packets and bytes each way, and every drop by reason. */
    @Override
    public TrafficStats stats() {
        return forwarder.stats();
    }

    /**
     * The forwarder's per-peer counters. A peer reached through a DirectRouting route is the kernel's to forward to:
     * only what it sends us is counted.
     */
    @Override
    public List<PeerStats> peerStats() {
        return forwarder.peerStats();
    }

    /** The TUN's virtio headers and the socket's GSO and GRO ({@link Forwarder#offloads}); none once closed. */
    @Override
    public List<OffloadStatus> offloads() {
        synchronized (lock) {
            if (closed) {
                return List.of();
            }
        }
        return forwarder.offloads(backend.options.offloads(), underlay);
    }

    /**
     * Stops forwarding and removes the TUN, its routes (the network's and the direct ones) and the socket. A userspace
     * data plane cannot go on forwarding without this JVM, so there is nothing to leave in place (the backend's
     * {@code cleanUpOnClose} concerns the kernel data plane). Idempotent.
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
        }
        Throwable first = cleanUp(null);
        if (first instanceof RuntimeException) {
            throw (RuntimeException) first;
        }
        if (first instanceof Error) {
            throw (Error) first;
        }
        if (first != null) {
            throw new OverlayException(OverlayException.Kind.DEVICE, "closing the userspace vxlan data plane on "
                    + (tun == null ? "?" : tun.name()) + " failed", first);
        }
        LOG.info("removed {} and its routes", tun.name());
    }

    /**
     * Stops the forwarder, deletes the routes, closes the socket, the TUN and the netlink socket, in that order, each
     * even if an earlier step failed.
     *
     * @param failure the exception that caused the clean-up, or null: later failures are added to it as suppressed
     * @return the first failure if {@code failure} was null, else null
     */
    private Throwable cleanUp(Throwable failure) {
        Throwable first = failure;
        if (forwarder != null) {
            first = attempt(first, forwarder::close);
        }
        synchronized (lock) {
            for (Route r : direct.values()) {
                first = attempt(first, () -> nl.deleteRoute(r));
            }
            direct.clear();
        }
        if (networkRoute != null) {
            first = attempt(first, () -> nl.deleteRoute(networkRoute));
        }
        if (socket != null) {
            first = attempt(first, socket::close);
        }
        if (tun != null) {
            first = attempt(first, tun::close);
        }
        if (forwarder != null) {
            first = attempt(first, () -> {
                try {
                    if (!forwarder.awaitTermination(5, TimeUnit.SECONDS)) {
                        LOG.warn("the forwarder threads of {} did not stop within 5 s", tun.name());
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        if (nl != null) {
            first = attempt(first, nl::close);
        }
        return failure == null ? first : null;
    }

    @Override
    public String toString() {
        return "vxlan network (userspace) " + (tun == null ? "?" : tun.name()) + " lease "
                + (lease == null ? "?" : lease.subnet());
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    @FunctionalInterface
    private interface Step {
        void run() throws Exception;
    }

    private static Throwable attempt(Throwable first, Step step) {
        try {
            step.run();
            return first;
        } catch (Throwable t) {
            if (first == null) {
                return t;
            }
            if (first != t) {
                first.addSuppressed(t);
            }
            return first;
        }
    }

    private void quietly(String what, Step step) {
        try {
            step.run();
        } catch (Exception e) {
            backend.failures.incrementAndGet();
            LOG.warn("{} failed: {}", what, e.toString());
        }
    }

    private void warnOnce(String key, String format, Object... args) {
        if (warned.size() > MAX_WARNED) {
            warned.clear();
        }
        if (warned.add(key)) {
            LOG.warn(format, args);
        } else {
            LOG.debug(format, args);
        }
    }
}
