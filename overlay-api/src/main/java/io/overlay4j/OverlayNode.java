package io.overlay4j;

import static com.google.common.base.Preconditions.checkArgument;
import static com.google.common.base.Preconditions.checkState;
import static java.util.Objects.requireNonNull;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InterfaceAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One host's membership in an overlay network: the control plane that flanneld is.
 *
 * <p>{@link #start()} reads the {@link NetworkConfig}, lets the {@link Backend} acquire a lease (preferring the
 * previous subnet from the subnet file) and set up its device and routes, writes flannel's {@code subnet.env}, watches
 * the other hosts' leases and feeds them to the backend, and renews the lease before it expires. If the lease is lost
 * it is re-acquired, the same subnet when it is still free. {@link #close()} stops all of it and removes what the
 * backend created; the lease stays in the store until it expires (as with flanneld) unless
 * {@link Builder#releaseOnClose(boolean)} is set.
 *
 * <p>Devices and sockets are created on the thread that calls {@link #start()}, and the node's own threads are started
 * from it, so a node started inside a network namespace (see {@code NetworkNamespace.call}) lives in that namespace.
 *
 * <pre>{@code
 * try (OverlayNode node = OverlayNode.builder()
 *         .allocator(allocator)
 *         .backend(UdpBackend.builder().build())
 *         .underlayInterface("eth0")
 *         .build()
 *         .start()) {
 *     System.out.println("our subnet: " + node.lease().subnet());
 * }
 * }</pre>
 */
public final class OverlayNode implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(OverlayNode.class);

    private final SubnetAllocator allocator;
    private Backend backend;
    private final Path subnetFile;
    private final boolean ipMasq;
    private final Duration renewMargin;
    private final boolean releaseOnClose;
    private final Clock clock;
    private final String interfaceName;
    private final Inet4Address interfaceAddress;
    private final Inet4Address publicAddress;
    private final int interfaceMtu;
    private final Ipv4Prefix preferredSubnet;

    private final Object lock = new Object();
    private ScheduledExecutorService control;
    private NetworkConfig config;
    private volatile Backend.Network network;
    private LeaseAttributes attributes;
    private volatile Lease lease;
    private SubnetAllocator.Watch watch;
    private ScheduledFuture<?> renewal;
    private final Map<Ipv4Prefix, Lease> peers = new TreeMap<>();
    private volatile boolean closed;
    private boolean started;

    private OverlayNode(Builder b, String ifName, Inet4Address ifAddress, int ifMtu) {
        this.allocator = b.allocator;
        this.backend = b.backend;
        this.subnetFile = b.subnetFile;
        this.ipMasq = b.ipMasq;
        this.renewMargin = b.renewMargin;
        this.releaseOnClose = b.releaseOnClose;
        this.clock = b.clock;
        this.interfaceName = ifName;
        this.interfaceAddress = ifAddress;
        this.publicAddress = b.publicAddress != null ? b.publicAddress : ifAddress;
        this.interfaceMtu = ifMtu;
        this.preferredSubnet = b.preferredSubnet;
    }

    /** A builder; {@link Builder#allocator} is required. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Joins the network: acquires the lease, sets up the backend, writes the subnet file and starts following peers.
     * Blocks until all of that is done.
     *
     * @return this node
     * @throws OverlayException for configuration and store errors ({@code CONFIG_*}, {@code SUBNETS_EXHAUSTED}, ...)
     * @throws UncheckedIOException for kernel errors; whatever was set up is removed again
     */
    public OverlayNode start() {
        synchronized (lock) {
            checkState(!started, "already started");
            started = true;
        }
        // Started from the caller's thread so that it inherits the caller's network namespace.
        control = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "overlay4j-node-" + interfaceName);
            t.setDaemon(true);
            return t;
        });
        try {
            config = allocator.networkConfig();
            if (backend == null) {
                backend = Backends.create(config.backendType());
            } else if (!backend.type().equals(config.backendType())) {
                throw new OverlayException(OverlayException.Kind.CONFIG_INVALID,
                        "the network's backend type is '" + config.backendType() + "' but this node runs '"
                                + backend.type() + "'");
            }
            Ipv4Prefix previous = preferredSubnet;
            if (previous == null && subnetFile != null) {
                previous = SubnetFile.readPreviousSubnet(subnetFile).orElse(null);
            }
            registerBackend(previous);
            writeSubnetFile();
            watch = allocator.watch(new PeerListener());
            scheduleRenewal();
            log.info("node on {} joined {} with subnet {} (mtu {})", interfaceName, config.network(),
                    lease.subnet(), network.mtu());
            return this;
        } catch (IOException e) {
            closeQuietly();
            throw new UncheckedIOException(e);
        } catch (RuntimeException | Error e) {
            closeQuietly();
            throw e;
        }
    }

    /** The node's current lease. */
    public Lease lease() {
        checkState(lease != null, "not started");
        return lease;
    }

    /** The network configuration read at start. */
    public NetworkConfig networkConfig() {
        checkState(config != null, "not started");
        return config;
    }

    /** The MTU for containers ({@code FLANNEL_MTU}). */
    public int mtu() {
        return onControl(() -> network.mtu());
    }

    /** The other hosts' leases as currently known, ordered by subnet. */
    public List<Lease> peers() {
        return onControl(() -> List.copyOf(peers.values()));
    }

    /** The data plane's counters. */
    public TrafficStats stats() {
        Backend.Network n = network;
        checkState(n != null, "not started");
        return n.stats();
    }

    /** The underlay interface this node uses. */
    public String interfaceName() {
        return interfaceName;
    }

    /** The address published in the lease. */
    public Inet4Address publicAddress() {
        return publicAddress;
    }

    /** Leaves the network: stops the watch and renewals and removes the backend's devices and routes. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException first = null;
        if (control != null && !control.isShutdown()) {
            try {
                control.submit(this::shutdownOnControl).get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                first = e.getCause() instanceof RuntimeException ? (RuntimeException) e.getCause()
                        : new IllegalStateException(e.getCause());
            } catch (Exception e) {
                first = new IllegalStateException("node shutdown did not finish", e);
            }
            control.shutdownNow();
        } else {
            shutdownOnControl();
        }
        if (first != null) {
            throw first;
        }
    }

    private void closeQuietly() {
        try {
            close();
        } catch (RuntimeException e) {
            log.warn("cleanup after a failed start failed too", e);
        }
    }

    private void shutdownOnControl() {
        RuntimeException first = null;
        if (renewal != null) {
            renewal.cancel(false);
        }
        if (watch != null) {
            try {
                watch.close();
            } catch (RuntimeException e) {
                first = e;
            }
        }
        if (network != null) {
            try {
                network.close();
            } catch (RuntimeException e) {
                first = addSuppressed(first, e);
            }
        }
        if (releaseOnClose && lease != null) {
            try {
                allocator.release(lease);
            } catch (RuntimeException e) {
                first = addSuppressed(first, e);
            }
        }
        if (first != null) {
            throw first;
        }
    }

    private static RuntimeException addSuppressed(RuntimeException first, RuntimeException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }

    private void registerBackend(Ipv4Prefix prefer) throws IOException {
        network = backend.register(new Backend.Context() {
            @Override
            public NetworkConfig config() {
                return config;
            }

            @Override
            public Inet4Address publicAddress() {
                return publicAddress;
            }

            @Override
            public Inet4Address interfaceAddress() {
                return interfaceAddress;
            }

            @Override
            public String interfaceName() {
                return interfaceName;
            }

            @Override
            public int interfaceMtu() {
                return interfaceMtu;
            }

            @Override
            public Lease acquireLease(LeaseAttributes attrs) {
                attributes = attrs;
                Lease l = allocator.acquire(attrs, prefer);
                lease = l;
                return l;
            }
        });
        lease = network.lease();
    }

    private void writeSubnetFile() {
        if (subnetFile == null) {
            return;
        }
        try {
            SubnetFile.write(subnetFile,
                    new SubnetFile.Contents(config.network(), lease.subnet(), network.mtu(), ipMasq));
        } catch (IOException e) {
            // flanneld only warns here: the overlay works without the file, consumers (Docker, CNI) will not.
            log.warn("could not write {}: {}", subnetFile, e.toString());
        }
    }

    private void scheduleRenewal() {
        Lease l = lease;
        if (l.isReservation() || closed) {
            return;
        }
        Instant now = clock.instant();
        Duration left = Duration.between(now, l.expiration());
        Duration delay = left.minus(renewMargin);
        if (delay.isNegative() || delay.isZero()) {
            // A TTL shorter than the margin (tests, tiny TTLs): renew at half-life instead of spinning.
            delay = left.dividedBy(2);
        }
        scheduleRenewal(delay);
    }

    private void scheduleRenewal(Duration delay) {
        long ms = Math.max(10, delay.toMillis());
        renewal = control.schedule(this::renew, ms, TimeUnit.MILLISECONDS);
    }

    private void renew() {
        if (closed) {
            return;
        }
        try {
            lease = allocator.renew(lease);
            log.debug("renewed {} until {}", lease.subnet(), lease.expiration());
            scheduleRenewal();
        } catch (OverlayException e) {
            if (e.kind() == OverlayException.Kind.LEASE_LOST) {
                log.warn("lease {} lost ({}); re-acquiring", lease.subnet(), e.getMessage());
                reacquire();
            } else {
                Duration left = lease.expiration() == null ? Duration.ofMinutes(1)
                        : Duration.between(clock.instant(), lease.expiration());
                Duration retry = Duration.ofSeconds(60);
                if (left.dividedBy(4).compareTo(retry) < 0) {
                    retry = left.dividedBy(4);
                }
                log.warn("renewing {} failed ({}); retrying in {} ms", lease.subnet(), e.getMessage(),
                        retry.toMillis());
                scheduleRenewal(retry);
            }
        } catch (RuntimeException e) {
            log.error("unexpected error renewing {}; retrying in 60 s", lease.subnet(), e);
            scheduleRenewal(Duration.ofSeconds(60));
        }
    }

    /** Our lease vanished (expired, deleted or taken): get one again, preferably the same subnet. */
    private void reacquire() {
        if (closed) {
            return;
        }
        Lease old = lease;
        try {
            Lease again = allocator.acquire(attributes, old.subnet());
            if (again.subnet().equals(old.subnet())) {
                lease = again;
                log.info("re-acquired {}", again.subnet());
            } else {
                // A different subnet means new addresses on the device: rebuild the backend around it.
                log.warn("subnet {} was taken; moving to {}", old.subnet(), again.subnet());
                if (network != null) {
                    network.close();
                    network = null;
                }
                registerBackend(again.subnet());
                writeSubnetFile();
                network.resetPeers(List.copyOf(peers.values()));
            }
            scheduleRenewal();
        } catch (RuntimeException | IOException e) {
            log.error("re-acquiring a lease failed; retrying in 5 s", e);
            renewal = control.schedule(this::reacquire, 5, TimeUnit.SECONDS);
        }
    }

    private <T> T onControl(Callable<T> task) {
        checkState(control != null, "not started");
        if (control.isShutdown()) {
            try {
                return task.call();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        try {
            return control.submit(task).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException) {
                throw (RuntimeException) e.getCause();
            }
            throw new IllegalStateException(e.getCause());
        }
    }

    /** Moves watch callbacks onto the control thread, where they are serialized with renewals. */
    private final class PeerListener implements SubnetAllocator.LeaseListener {
        @Override
        public void onSnapshot(List<Lease> leases) {
            List<Lease> copy = List.copyOf(leases);
            control.execute(() -> applySnapshot(copy));
        }

        @Override
        public void onEvents(List<LeaseEvent> events) {
            List<LeaseEvent> copy = List.copyOf(events);
            control.execute(() -> applyEvents(copy));
        }

        @Override
        public void onError(Throwable error) {
            log.warn("lease watch: {}", error.toString());
        }
    }

    private void applySnapshot(List<Lease> leases) {
        if (closed || network == null) {
            return;
        }
        Ipv4Prefix own = lease.subnet();
        peers.clear();
        boolean ownSeen = false;
        for (Lease l : leases) {
            if (l.subnet().equals(own)) {
                ownSeen = true;
            } else {
                peers.put(l.subnet(), l);
            }
        }
        network.resetPeers(List.copyOf(peers.values()));
        log.debug("peers reset to {}", peers.keySet());
        if (!ownSeen) {
            log.warn("our lease {} is missing from the store", own);
            reacquire();
        }
    }

    private void applyEvents(List<LeaseEvent> events) {
        if (closed || network == null) {
            return;
        }
        Ipv4Prefix own = lease.subnet();
        List<LeaseEvent> forBackend = new ArrayList<>(events.size());
        boolean ownLost = false;
        for (LeaseEvent e : events) {
            Ipv4Prefix s = e.lease().subnet();
            if (s.equals(own)) {
                ownLost = e.type() == LeaseEvent.Type.REMOVED;
                continue;
            }
            if (e.type() == LeaseEvent.Type.ADDED) {
                peers.put(s, e.lease());
            } else if (peers.remove(s) == null) {
                continue;
            }
            forBackend.add(e);
        }
        if (!forBackend.isEmpty()) {
            network.peersChanged(Collections.unmodifiableList(forBackend));
        }
        if (ownLost) {
            log.warn("our lease {} was removed from the store", own);
            reacquire();
        }
    }

    /** Options for an {@link OverlayNode}. */
    public static final class Builder {
        private SubnetAllocator allocator;
        private Backend backend;
        private Inet4Address publicAddress;
        private String underlayInterface;
        private Inet4Address underlayAddress;
        private Path subnetFile = Path.of("/run/flannel/subnet.env");
        private boolean ipMasq;
        private Duration renewMargin = Duration.ofMinutes(60);
        private boolean releaseOnClose;
        private Clock clock = Clock.systemUTC();
        private Ipv4Prefix preferredSubnet;

        private Builder() {
        }

        /** Required: where leases come from ({@code LocalSubnetAllocator}, {@code EtcdSubnetAllocator}). */
        public Builder allocator(SubnetAllocator allocator) {
            this.allocator = requireNonNull(allocator, "allocator");
            return this;
        }

        /**
         * How traffic is carried ({@code UdpBackend}, {@code VxlanBackend}, ...). Default: the backend the network's
         * config names ({@code Backend.Type}), with its default options, from {@link Backends}. A backend given here
         * must be of the config's type.
         */
        public Builder backend(Backend backend) {
            this.backend = requireNonNull(backend, "backend");
            return this;
        }

        /**
         * The address published in the lease ({@code --public-ip}). Default: the underlay interface's address. If no
         * underlay interface is set, the interface holding this address is used.
         */
        public Builder publicAddress(Inet4Address publicAddress) {
            this.publicAddress = requireNonNull(publicAddress, "publicAddress");
            return this;
        }

        /**
         * The interface that carries encapsulated traffic ({@code --iface}). Default: the interface holding
         * {@link #publicAddress}, else the first interface that is up, not loopback and has an IPv4 address.
         */
        public Builder underlayInterface(String name) {
            this.underlayInterface = requireNonNull(name, "name");
            return this;
        }

        /**
         * The underlay interface's address the backend binds to (flanneld's {@code --iface <IP>}, where that IP is
         * used rather than the interface's first). Default: the first IPv4 address of the underlay interface.
         */
        public Builder underlayAddress(Inet4Address address) {
            this.underlayAddress = requireNonNull(address, "address");
            return this;
        }

        /** Where to write flannel's subnet.env, or {@code null} for none. Default {@code /run/flannel/subnet.env}. */
        public Builder subnetFile(Path subnetFile) {
            this.subnetFile = subnetFile;
            return this;
        }

        /** The value written as {@code FLANNEL_IPMASQ}. Default false. */
        public Builder ipMasq(boolean ipMasq) {
            this.ipMasq = ipMasq;
            return this;
        }

        /** How long before expiry the lease is renewed ({@code --subnet-lease-renew-margin}). Default 60 min. */
        public Builder renewMargin(Duration renewMargin) {
            checkArgument(!renewMargin.isNegative() && !renewMargin.isZero(), "renew margin must be positive: %s",
                    renewMargin);
            this.renewMargin = renewMargin;
            return this;
        }

        /** Whether {@link OverlayNode#close()} gives the lease back. Default false, as flanneld. */
        public Builder releaseOnClose(boolean releaseOnClose) {
            this.releaseOnClose = releaseOnClose;
            return this;
        }

        /**
         * The subnet to ask for first. Default: the one recorded in the subnet file ({@code FLANNEL_SUBNET}), as
         * flanneld does after a restart.
         */
        public Builder preferredSubnet(Ipv4Prefix subnet) {
            this.preferredSubnet = subnet;
            return this;
        }

        /** The clock for renewal timing. */
        public Builder clock(Clock clock) {
            this.clock = requireNonNull(clock, "clock");
            return this;
        }

        /**
         * Resolves the underlay interface (in the calling thread's network namespace) and validates the options.
         *
         * @throws OverlayException {@code ILLEGAL_ARGUMENT} if an option is missing or the interface is unusable
         */
        public OverlayNode build() {
            if (allocator == null) {
                throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT,
                        "an OverlayNode needs an allocator");
            }
            try {
                NetworkInterface nif = findInterface();
                Inet4Address address = firstIpv4(nif).orElseThrow(() -> new OverlayException(
                        OverlayException.Kind.ILLEGAL_ARGUMENT, "interface " + nif.getName() + " has no IPv4 address"));
                if (underlayAddress != null) {
                    address = underlayAddress;
                } else if (underlayInterface == null && publicAddress != null) {
                    address = publicAddress;
                }
                return new OverlayNode(this, nif.getName(), address, nif.getMTU());
            } catch (SocketException e) {
                throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT,
                        "cannot read network interfaces: " + e.getMessage(), e);
            }
        }

        private NetworkInterface findInterface() throws SocketException {
            if (underlayInterface != null) {
                NetworkInterface nif = NetworkInterface.getByName(underlayInterface);
                if (nif == null) {
                    throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT,
                            "no interface named " + underlayInterface);
                }
                return nif;
            }
            if (publicAddress != null) {
                NetworkInterface nif = NetworkInterface.getByInetAddress(publicAddress);
                if (nif == null) {
                    throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT, "no interface holds "
                            + publicAddress.getHostAddress() + "; name the underlay interface as well (NAT)");
                }
                return nif;
            }
            Enumeration<NetworkInterface> all = NetworkInterface.getNetworkInterfaces();
            while (all != null && all.hasMoreElements()) {
                NetworkInterface nif = all.nextElement();
                if (nif.isUp() && !nif.isLoopback() && firstIpv4(nif).isPresent()) {
                    return nif;
                }
            }
            throw new OverlayException(OverlayException.Kind.ILLEGAL_ARGUMENT,
                    "no usable underlay interface (up, not loopback, with an IPv4 address); name one");
        }

        private static Optional<Inet4Address> firstIpv4(NetworkInterface nif) {
            for (InterfaceAddress a : nif.getInterfaceAddresses()) {
                InetAddress ia = a.getAddress();
                if (ia instanceof Inet4Address) {
                    return Optional.of((Inet4Address) ia);
                }
            }
            return Optional.empty();
        }
    }
}
