package io.overlay4j.vxlan;

import io.overlay4j.Backend;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OverlayException;
import io.overlay4j.Route;
import io.overlay4j.TunOptions;
import io.overlay4j.internal.Cleanup;
import io.overlay4j.internal.WarnOnce;
import io.overlay4j.tun.Link;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.Forwarder;
import io.overlay4j.udp.VxlanEncapsulator;
import io.overlay4j.udp.VxlanLeaseData;
import io.overlay4j.udp.internal.ForwardingNetwork;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
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
 * In {@link #peerStats()}, a peer reached through a DirectRouting route is the kernel's to forward to: only what it
 * sends us is counted.
 */
final class UserspaceVxlanNetwork extends ForwardingNetwork implements VxlanBackend.VxlanNetwork {
    private static final Logger LOG = LoggerFactory.getLogger(UserspaceVxlanNetwork.class);
    private static final int SOCKET_BUFFER_SIZE = 4 << 20;
    private static final byte[] MAC_SEED_LABEL = "overlay4j userspace VTEP".getBytes(StandardCharsets.US_ASCII);

    private final VxlanBackend backend;
    private final VxlanConfig config;
    private final Ipv4Prefix network;
    private final Inet4Address publicIp;
    private final int port;
    /** DirectRouting: the routes installed for peers the kernel reaches without a gateway. */
    private final Map<Ipv4Prefix, Route> direct = new TreeMap<>();
    private final WarnOnce warnings = new WarnOnce(LOG);
    private NetlinkRouteProgrammer nl;
    private Route networkRoute;
    private String mac;

    private UserspaceVxlanNetwork(VxlanBackend backend, Backend.Context context, VxlanConfig config) {
        super(config.deviceMtu(context.interfaceMtu()), backend.options.offloads(), context.interfaceName());
        this.backend = backend;
        this.config = config;
        this.network = context.config().network();
        this.publicIp = context.publicAddress();
        this.port = config.effectivePort();
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
            n.tearDown(e);
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
        tun = LinuxTunDevice.open(new TunOptions(name, mtu()).withOffloads(options.offloads()));
        InetSocketAddress bind = new InetSocketAddress(context.interfaceAddress(), port);
        socket = UdpSocket.open(bind, UdpSocket.Options.builder().sendBufferSize(SOCKET_BUFFER_SIZE)
                .receiveBufferSize(SOCKET_BUFFER_SIZE).gro(options.offloads()).build());
        Ipv4Prefix own = acquireLease(context, new LeaseAttributes(publicIp, null, VxlanBackend.TYPE,
                new VxlanLeaseData(config.vni(), mac).toJson())).subnet();
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
                .mtu(mtu())
                .ownSubnet(own)
                .network(network)
                .admitAnySenderAddress(options.admitAnySenderAddress())
                .threadFactory(context.threadFactory())
                .build();
        forwarder = f;
        f.start();
        LOG.info("vxlan backend up, userspace data plane: {} (VNI {}, port {}, VtepMAC {}, MTU {}, offloads {}: "
                        + "virtio header {}, GSO {}, GRO {}), address {}/32, route {}, socket {}", tun.name(),
                config.vni(), port, mac, mtu(), options.offloads() ? "asked" : "off", f.vnetHeader(),
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
    public VxlanBackend.DataPlane dataPlane() {
        return VxlanBackend.DataPlane.USERSPACE;
    }

    @Override
    protected void applyPeers(List<LeaseEvent> events) {
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

    @Override
    protected void replacePeers(List<Lease> peers) {
        List<Lease> usable = new ArrayList<>(peers.size());
        for (Lease l : peers) {
            if (usable(l)) {
                usable.add(l);
            }
        }
        removeMissing(direct.keySet(), usable, this::unrouteDirectly);
        for (Lease l : usable) {
            routeDirectly(l);
        }
        forwarder.resetPeers(usable);
    }

    /**
     * Whether a peer's lease goes to the forwarder, as the kernel data plane decides it: another backend type is
     * ignored (counted, as flanneld ignores it), malformed BackendData or a VtepMAC no VTEP can have is skipped
     * (counted); another VNI is passed on, and the forwarder's peer table skips and lists it.
     */
    private boolean usable(Lease peer) {
        // another VNI is usable: the peer table skips it, logged with the reason, until the VNIs agree
        return backend.peerData(peer, warnings, true) != null;
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

    /** The VtepMAC this node publishes. */
    String vtepMac() {
        return mac;
    }

    /**
     * Stops forwarding and removes the TUN, its routes (the network's and the direct ones) and the socket. A userspace
     * data plane cannot go on forwarding without this JVM, so there is nothing to leave in place (the backend's
     * {@code cleanUpOnClose} concerns the kernel data plane). Idempotent.
     */
    @Override
    protected void release() {
        Cleanup.rethrow(tearDown(null), "closing the userspace vxlan data plane on " + tunName() + " failed");
        LOG.info("removed {} and its routes", tunName());
    }

    /** The direct routes, then the network's route into the TUN. */
    @Override
    protected Throwable deleteRoutes(Throwable first) {
        synchronized (lock) {
            for (Route r : direct.values()) {
                first = Cleanup.attempt(first, () -> nl.deleteRoute(r));
            }
            direct.clear();
        }
        if (networkRoute != null) {
            first = Cleanup.attempt(first, () -> nl.deleteRoute(networkRoute));
        }
        return first;
    }

    @Override
    protected Throwable closeRoutes(Throwable first) {
        return nl == null ? first : Cleanup.attempt(first, nl::close);
    }

    @Override
    public String toString() {
        return "vxlan network (userspace) " + tunName() + " lease " + leaseText();
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    private void quietly(String what, Cleanup.Step step) {
        Cleanup.quietly(LOG, backend.failures, what, step);
    }
}
