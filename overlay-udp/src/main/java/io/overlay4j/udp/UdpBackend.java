package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Backend;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.Route;
import io.overlay4j.RouteProgrammer;
import io.overlay4j.TunDevice;
import io.overlay4j.TunOptions;
import io.overlay4j.internal.Cleanup;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.internal.ForwardingNetwork;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * flannel's {@code udp} backend, with the data path in this JVM: a TUN device ({@code flannel0}) whose packets a
 * {@link Forwarder} carries, one per UDP datagram, to the peer owning the destination subnet, and back.
 *
 * <p>{@link #register} does what flanneld does (flannel-facts §3.3): opens the TUN with MTU = underlay MTU − 28,
 * acquires the lease with attributes {@code {"PublicIP": ...}} only, puts the own subnet's network address as a /32 on
 * the TUN, sets it up, routes the whole overlay network to it, binds a UDP socket to the underlay interface's address
 * and the port, and starts the forwarder. The returned {@link Backend.Network} follows peers copy-on-write and undoes
 * all of it on {@link Backend.Network#close()}.
 *
 * <p>Offloads are on by default ({@link Builder#offloads}): the TUN is opened with virtio headers (TCP super-packets
 * of up to 64 KiB per read and write) and the socket with UDP GRO, and sends use UDP GSO; each offload the kernel
 * refuses falls back on its own, and the wire format is flannel's either way. Received datagrams are admitted only
 * from current leases' public addresses at the network's port, with inner sources in the sender's subnet and inner
 * destinations in this node's subnet ({@link Forwarder}). The forwarder's two threads come from
 * {@link Backend.Context#threadFactory()}.
 */
public final class UdpBackend implements Backend {
    /** The backend type name. */
    public static final String TYPE = "udp";
    /**
     * The default socket send and receive buffer size: 8 MiB (the kernel doubles it), about 60 ms of traffic at
     * 1 Gb/s for a receiving thread that loses the CPU for a while.
     */
    public static final int DEFAULT_SOCKET_BUFFER_SIZE = 8 << 20;
    private static final Logger LOG = LoggerFactory.getLogger(UdpBackend.class);

    private final int port;
    private final String tunName;
    private final TunDevice.Factory tunFactory;
    private final boolean offloads;
    private final Supplier<RouteProgrammer> routeSupplier;
    private final RouteProgrammer routes;
    private final int socketBufferSize;
    private final boolean admitAnySenderAddress;
    private final Consumer<Throwable> errorHandler;

    private UdpBackend(Builder b) {
        this.port = b.port;
        this.tunName = b.tunName;
        this.tunFactory = b.tunFactory;
        this.offloads = b.offloads;
        this.routeSupplier = b.routeSupplier;
        this.routes = b.routes;
        this.socketBufferSize = b.socketBufferSize;
        this.admitAnySenderAddress = b.admitAnySenderAddress;
        this.errorHandler = b.errorHandler;
    }

    /** A builder; every option has a default (the Linux TUN device and rtnetlink). */
    public static Builder builder() {
        return new Builder();
    }

    /** {@code udp}. */
    @Override
    public String type() {
        return TYPE;
    }

    /**
     * {@inheritDoc}
     *
     * <p>The port is the configured one, else the config's {@code Backend.Port}, else 8285.
     *
     * @throws OverlayException of kind {@link OverlayException.Kind#CONFIG_INVALID} for a port outside 1..65535
     */
    @Override
    public Network register(Context context) throws IOException {
        NetworkConfig config = context.config();
        int udpPort = port > 0 ? port : config.backendInt("Port", FlannelUdpEncapsulator.DEFAULT_PORT);
        return register(context, config.network(), udpPort);
    }

    /**
     * {@link #register(Context)} with the two values it reads from the config already read; {@code context.config()}
     * is not called. Package-private so unit tests need no {@link NetworkConfig}.
     */
    UdpNetwork register(Context context, Ipv4Prefix network, int udpPort) throws IOException {
        requireNonNull(network, "network");
        if (udpPort < 1 || udpPort > 65535) {
            throw new OverlayException(OverlayException.Kind.CONFIG_INVALID, "udp backend Port must be 1..65535: "
                    + udpPort);
        }
        int mtu = context.interfaceMtu() - FlannelUdpEncapsulator.OVERHEAD;
        UdpNetwork net = new UdpNetwork(udpPort, mtu, offloads, context.interfaceName());
        net.setUp(this, context, network);
        return net;
    }

    @Override
    public String toString() {
        return "UdpBackend[port " + (port > 0 ? port : "from config") + ", tun " + tunName + "]";
    }

    /** The running backend for one lease. */
    static final class UdpNetwork extends ForwardingNetwork {
        private final int port;
        private RouteProgrammer routes;
        private boolean ownsRoutes;
        private Route route;

        UdpNetwork(int port, int mtu, boolean offloads, String interfaceName) {
            super(mtu, offloads, interfaceName == null ? "underlay" : interfaceName);
            this.port = port;
        }

        /** What {@link UdpBackend#register} does, on this network's fields; cleans up if any step fails. */
        void setUp(UdpBackend b, Context context, Ipv4Prefix network) throws IOException {
            try {
                tun = b.tunFactory.open(new TunOptions(b.tunName, mtu()).withOffloads(b.offloads));
                String device = tun.name();
                Ipv4Prefix own = acquireLease(context, LeaseAttributes.udp(context.publicAddress())).subnet();
                if (b.routeSupplier != null) {
                    routes = requireNonNull(b.routeSupplier.get(), "route programmer supplier returned null");
                    ownsRoutes = true;
                } else {
                    routes = b.routes;
                }
                routes.addAddress(device, own.network(), 32);
                routes.setLinkUp(device);
                Route route = Route.viaDevice(network, device);
                routes.addRoute(route);
                this.route = route;
                InetSocketAddress bind = new InetSocketAddress(context.interfaceAddress(), port);
                socket = UdpSocket.open(bind, UdpSocket.Options.builder().sendBufferSize(b.socketBufferSize)
                        .receiveBufferSize(b.socketBufferSize).gro(b.offloads).build());
                Forwarder.Builder fb = Forwarder.builder()
                        .tun(tun)
                        .socket(socket)
                        .ownsSocket(true) // closing it wakes the receiver, also where loopback is down
                        .port(port)
                        .mtu(mtu())
                        .ownSubnet(own)
                        .network(network)
                        .admitAnySenderAddress(b.admitAnySenderAddress)
                        .threadFactory(context.threadFactory());
                if (b.errorHandler != null) {
                    fb.errorHandler(b.errorHandler);
                }
                Forwarder f = fb.build();
                forwarder = f;
                f.start();
                LOG.info("udp backend up: {} mtu {} (offloads {}: virtio header {}, GSO {}, GRO {}), address {}/32, "
                                + "route {}, socket {} (buffers {}/{} B)", device, mtu(), b.offloads ? "asked" : "off",
                        f.vnetHeader(), socket.gsoSupported(), socket.groEnabled(),
                        own.network().getHostAddress(), route, bind, socket.sendBufferSize(),
                        socket.receiveBufferSize());
                if (b.admitAnySenderAddress) {
                    LOG.warn("udp backend on {} admits datagrams from any sender address (peers behind NAT)", device);
                }
            } catch (IOException | RuntimeException | Error e) {
                tearDown(e);
                throw e;
            }
        }

        @Override
        protected void applyPeers(List<LeaseEvent> events) {
            for (LeaseEvent e : events) {
                if (e.type() == LeaseEvent.Type.ADDED) {
                    warnIfNotUdp(e.lease());
                }
            }
            forwarder.peersChanged(events);
        }

        @Override
        protected void replacePeers(List<Lease> peers) {
            for (Lease l : peers) {
                warnIfNotUdp(l);
            }
            forwarder.resetPeers(peers);
        }

        /**
         * flannel's udp backend routes to every lease whatever its backend, so a mixed network loses traffic silently
         * (flannel-facts §9). We route the same way, for compatibility, but say so.
         */
        private static void warnIfNotUdp(Lease peer) {
            String type = peer.attributes().backendType();
            if (type != null && !TYPE.equals(type)) {
                LOG.warn("peer {} at {} uses backend '{}', not udp: traffic sent to it will most likely be lost",
                        peer.subnet(), peer.attributes().publicIp().getHostAddress(), type);
            }
        }

        /**
         * Stops the forwarder, deletes the route, closes the socket, the TUN and an owned route programmer, in that
         * order, each even if an earlier step failed.
         */
        @Override
        protected void release() {
            Cleanup.rethrow(tearDown(null), "closing the udp backend on " + tunName() + " failed");
        }

        @Override
        protected Throwable deleteRoutes(Throwable first) {
            return route == null ? first : Cleanup.attempt(first, () -> routes.deleteRoute(route));
        }

        @Override
        protected Throwable closeRoutes(Throwable first) {
            return ownsRoutes && routes != null ? Cleanup.attempt(first, routes::close) : first;
        }

        @Override
        public String toString() {
            return "udp network " + tunName() + " lease " + leaseText() + " port " + port;
        }
    }

    /** Builds a {@link UdpBackend}. */
    public static final class Builder {
        private int port;
        private String tunName = TunOptions.DEFAULT_NAME;
        private TunDevice.Factory tunFactory;
        private Supplier<RouteProgrammer> routeSupplier;
        private RouteProgrammer routes;
        private int socketBufferSize = DEFAULT_SOCKET_BUFFER_SIZE;
        private boolean admitAnySenderAddress;
        private boolean offloads = true;
        private Consumer<Throwable> errorHandler;

        private Builder() {
        }

        /** The UDP port of all nodes; default the config's {@code Backend.Port}, else 8285. */
        public Builder port(int port) {
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("UDP port must be 1..65535: " + port);
            }
            this.port = port;
            return this;
        }

        /** The TUN name or template; default {@code flannel%d}. */
        public Builder tunName(String tunName) {
            this.tunName = requireNonNull(tunName, "tunName");
            return this;
        }

        /** Opens the TUN device; default {@link LinuxTunDevice#open}. Tests and benchmarks plug in others. */
        public Builder tunFactory(TunDevice.Factory tunFactory) {
            this.tunFactory = requireNonNull(tunFactory, "tunFactory");
            return this;
        }

        /**
         * Supplies a route programmer at each {@link #register}, called on the registering thread (so a netlink
         * socket opens in its namespace); the network closes it when it closes. Default: a
         * {@link NetlinkRouteProgrammer} opened on the registering thread.
         */
        public Builder routes(Supplier<RouteProgrammer> routes) {
            this.routeSupplier = requireNonNull(routes, "routes");
            this.routes = null;
            return this;
        }

        /** A route programmer the caller owns and closes. */
        public Builder routes(RouteProgrammer routes) {
            this.routes = requireNonNull(routes, "routes");
            this.routeSupplier = null;
            return this;
        }

        /** {@code SO_SNDBUF} and {@code SO_RCVBUF} of the data socket; default 8 MiB. */
        public Builder socketBufferSize(int socketBufferSize) {
            if (socketBufferSize < 1) {
                throw new IllegalArgumentException("socket buffer size must be positive: " + socketBufferSize);
            }
            this.socketBufferSize = socketBufferSize;
            return this;
        }

        /**
         * Relaxes ingress admission for peers behind NAT, whose datagrams arrive from an address other than their
         * lease's {@code PublicIP}: see {@link Forwarder.Builder#admitAnySenderAddress}. Default false: datagrams are
         * accepted only from a current lease's public address and the network's port.
         */
        public Builder admitAnySenderAddress(boolean admitAnySenderAddress) {
            this.admitAnySenderAddress = admitAnySenderAddress;
            return this;
        }

        /**
         * Whether to use the offload data path: a TUN device with virtio headers (TSO reads, coalesced writes) and a
         * UDP socket with GSO sends and GRO receives. Each offload the kernel refuses falls back on its own; the wire
         * format stays flannel's either way, so nodes with and without offloads interoperate. Default true; false
         * gives the plain path (one packet per read, send, receive and write), e.g. to compare or to rule them out.
         */
        public Builder offloads(boolean offloads) {
            this.offloads = offloads;
            return this;
        }

        /** The forwarder's error handler; default a rate-limited slf4j warning. */
        public Builder errorHandler(Consumer<Throwable> errorHandler) {
            this.errorHandler = requireNonNull(errorHandler, "errorHandler");
            return this;
        }

        /** Builds the backend; unset options get the Linux defaults (kernel TUN device, rtnetlink). */
        public UdpBackend build() {
            if (tunFactory == null) {
                tunFactory = LinuxTunDevice::open;
            }
            if (routes == null && routeSupplier == null) {
                routeSupplier = Builder::openNetlink;
            }
            return new UdpBackend(this);
        }

        private static RouteProgrammer openNetlink() {
            try {
                return NetlinkRouteProgrammer.open();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }
}
