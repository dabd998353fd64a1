package io.overlay4j;

import static java.util.Objects.requireNonNull;

import io.overlay4j.OverlayException.Kind;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InterfaceAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One host's membership in an overlay network: the control plane that flanneld is.
 *
 * <p>{@link #start()} reads the {@link NetworkConfig}, lets the {@link Backend} acquire a lease (preferring the
 * previous subnet from the subnet file) and set up its device and routes, writes flannel's {@code subnet.env} if asked
 * to, watches the other hosts' leases and feeds them to the backend, and renews the lease before it expires.
 * {@link #startAsync()} does the same but keeps retrying while the store is unreachable or holds no valid config.
 * {@link #close()} stops all of it and closes the backend (the udp backend removes its device; the kernel backends
 * leave the kernel's forwarding in place by default, as flanneld does); the lease stays in the store until it
 * expires (as with flanneld) unless {@link Builder#releaseOnClose(boolean)} is set.
 *
 * <p><b>State and events.</b> {@link #state()} is one of {@link State}; a {@link Listener} (given to the builder, or
 * added with {@link #addListener}) hears about state changes, subnet changes, peers added and removed, and renewals,
 * in order, on the node's control thread. The node's own key in the store is authoritative: a corrupt value there is
 * rewritten at the next renewal and the node keeps its subnet. Only if another node now holds the subnet is the lease
 * lost ({@link State#LEASE_LOST}); the node then moves to a new subnet and reports it through
 * {@link Listener#subnetChanged}, or, with {@link Builder#moveOnLeaseLoss(boolean) moveOnLeaseLoss(false)}, stays in
 * {@code LEASE_LOST} for the program to act (flanneld exits then).
 *
 * <p><b>Errors.</b> Every failure of {@code start()} is an {@link OverlayException}: {@code ILLEGAL_ARGUMENT} (a bad
 * option, no such interface), {@code CONFIG_NOT_FOUND}/{@code CONFIG_INVALID}, {@code STORE_UNAVAILABLE},
 * {@code STORE_CORRUPT}, {@code SUBNETS_EXHAUSTED}, {@code LEASE_CONFLICT}, {@code NOT_PERMITTED} (no root,
 * CAP_NET_ADMIN or {@code /dev/net/tun}) or {@code DEVICE} (a device, address, route or port could not be set up);
 * whatever was set up is removed again.
 *
 * <p><b>Stats.</b> {@link #nodeStats()} is a snapshot of the state, the lease, whether the store answers, the data
 * plane's counters (node-wide and, where the backend counts per peer, per peer) and its offloads, readable at any
 * time and never throwing; {@code overlay-micrometer}'s {@code OverlayNodeMetrics} turns it into meters.
 *
 * <p><b>Threads and namespaces.</b> The node runs on two threads of its own (control, and one for blocking store calls)
 * from {@link Builder#threadFactory}; by default they are started by the thread that calls {@code start()} and so
 * inherit its network namespace. Devices and sockets are created on the control thread. A node therefore lives in the
 * namespace of the thread that starts it, or in the one its thread factory's threads enter
 * ({@code NetworkNamespace.threadFactory()}); the backend's own threads come from the same factory.
 *
 * <pre>{@code
 * try (OverlayNode node = OverlayNode.builder()
 *         .allocator(allocator)
 *         .underlayInterface("eth0")
 *         .listener(new OverlayNode.Listener() {
 *             public void subnetChanged(Lease previous, Lease current) { bridge.readdress(current.subnet()); }
 *         })
 *         .build()
 *         .start()) {
 *     System.out.println("our subnet: " + node.lease().subnet());
 * }
 * }</pre>
 */
public final class OverlayNode implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(OverlayNode.class);
    private static final AtomicInteger NODE_IDS = new AtomicInteger();
    private static final Duration MAX_RETRY = Duration.ofSeconds(30);
    private static final Duration MAX_RENEW_RETRY = Duration.ofSeconds(60);

    /** Where a node stands. */
    public enum State {
        /** Built, or joining the network ({@link #start()} or {@link #startAsync()} in progress). */
        STARTING,
        /** The node holds its lease, its data plane runs, and the store answers. */
        READY,
        /**
         * The store cannot be reached (or its watch fails): the node keeps its subnet and forwards to the peers it
         * knows, and retries; it returns to {@link #READY} when the store answers again.
         */
        DEGRADED,
        /**
         * Another node holds this node's subnet now. With {@link Builder#moveOnLeaseLoss(boolean)} (the default) the
         * node is moving to a new subnet and returns to {@link #READY} after {@link Listener#subnetChanged}; without,
         * it stays here (its data plane still runs) until closed.
         */
        LEASE_LOST,
        /** Closed, or the start failed. */
        CLOSED
    }

    /**
     * Receives a node's events, in order, on the node's control thread. Every method has an empty default. A listener
     * must return quickly and must not block on the node; one that throws does not stop the node (its errors are
     * counted in {@link #listenerErrors()} and logged once).
     */
    public interface Listener {
        /**
         * The node's state changed.
         *
         * @param cause why, for {@code DEGRADED}, {@code LEASE_LOST} and a failed start ({@code CLOSED}); else null
         */
        default void stateChanged(State previous, State current, OverlayException cause) {
        }

        /**
         * The node's subnet was set: {@code previous} is null at start; otherwise the node moved after losing its
         * lease, and devices, routes and subnet file now carry {@code current}.
         */
        default void subnetChanged(Lease previous, Lease current) {
        }

        /** A peer appeared, or its attributes (address, backend data) changed. */
        default void peerAdded(Lease peer) {
        }

        /** A peer went away (its lease expired or was released); {@code peer} holds its last known attributes. */
        default void peerRemoved(Lease peer) {
        }

        /** The node renewed (or re-created) its lease; {@code lease} has the new expiration. */
        default void leaseRenewed(Lease lease) {
        }

        /** A {@link #startAsync()} attempt failed with a cause that may pass; the next follows after {@code delay}. */
        default void startRetrying(OverlayException cause, Duration delay) {
        }
    }

    /** A listener's registration; {@link #close()} removes it. */
    public interface Registration extends AutoCloseable {
        /** Stops delivering events to the listener. Idempotent. */
        @Override
        void close();
    }

    private final SubnetAllocator allocator;
    private final Backend givenBackend;
    private final Path subnetFile;
    private final boolean ipMasq;
    private final Duration renewMargin;
    private final boolean releaseOnClose;
    private final boolean moveOnLeaseLoss;
    private final Duration retryInterval;
    private final Clock clock;
    private final String underlayInterface;
    private final Inet4Address underlayAddress;
    private final Inet4Address givenPublicAddress;
    private final Ipv4Prefix preferredSubnet;
    private final ThreadFactory threads;
    private final String name;

    private final Object lock = new Object();
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private final Set<Listener> listenersLogged = ConcurrentHashMap.newKeySet();
    private final AtomicLong listenerErrors = new AtomicLong();
    private final Set<String> rejectedPeers = ConcurrentHashMap.newKeySet();
    private final CompletableFuture<OverlayNode> started = new CompletableFuture<>();
    private boolean begun;
    private volatile boolean closed;
    private ScheduledThreadPoolExecutor control;
    private ScheduledThreadPoolExecutor store;
    private volatile Thread controlThread;

    // Written on the control thread only; volatile for the getters.
    private volatile State state = State.STARTING;
    private volatile String interfaceName;
    private volatile Inet4Address interfaceAddress;
    private volatile Inet4Address publicAddress;
    private volatile int interfaceMtu;
    private volatile NetworkConfig config;
    private volatile Backend.Network network;
    private volatile Lease lease;
    private volatile List<Lease> peerList = List.of();
    // Counters: of the data planes closed when the node moved; the node's last ones once it closed (then non-null).
    private final Object statsLock = new Object();
    private final AtomicBoolean statsFailureLogged = new AtomicBoolean();
    private DataPlaneTotals retired = DataPlaneTotals.NONE;
    private volatile DataPlaneTotals dataPlaneTotals;
    private Backend backend;
    private LeaseAttributes attributes;
    private SubnetAllocator.Watch watch;
    private ScheduledFuture<?> pending;
    private final Map<Ipv4Prefix, Lease> peers = new TreeMap<>();
    private boolean watchFailing;
    private boolean renewFailing;
    private OverlayException storeError;
    private Lease ownSubnetHolder;
    private Duration renewRetry;
    private Duration startRetry;

    private OverlayNode(Builder b) {
        this.allocator = b.allocator;
        this.givenBackend = b.backend;
        this.subnetFile = b.subnetFile;
        this.ipMasq = b.ipMasq;
        this.renewMargin = b.renewMargin;
        this.releaseOnClose = b.releaseOnClose;
        this.moveOnLeaseLoss = b.moveOnLeaseLoss;
        this.retryInterval = b.retryInterval;
        this.clock = b.clock;
        this.underlayInterface = b.underlayInterface;
        this.underlayAddress = b.underlayAddress;
        this.givenPublicAddress = b.publicAddress;
        this.preferredSubnet = b.preferredSubnet;
        this.name = "overlay4j-node-" + NODE_IDS.incrementAndGet();
        this.threads = b.threadFactory != null ? b.threadFactory : new DefaultThreads(name);
        this.listeners.addAll(b.listeners);
        this.startRetry = retryInterval;
        this.renewRetry = retryInterval;
    }

    /** A builder; {@link Builder#allocator} is required. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Joins the network: acquires the lease, sets up the backend, writes the subnet file and starts following peers.
     * Blocks until all of that is done; fails at the first error.
     *
     * @return this node, {@link State#READY}
     * @throws OverlayException for every failure (see the class comment for the kinds); the node is then
     *                          {@link State#CLOSED} and whatever was set up is removed again
     */
    public OverlayNode start() {
        CompletableFuture<OverlayNode> f = begin(false);
        try {
            return f.get();
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof OverlayException) {
                OverlayException o = (OverlayException) cause;
                throw new OverlayException(o.kind(), o.getMessage(), o);
            }
            throw new OverlayException(Kind.DEVICE, "starting the node failed: " + cause, cause);
        } catch (CancellationException e) {
            throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "the node was closed while starting", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            close();
            throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "interrupted while starting the node", e);
        }
    }

    /**
     * Joins the network in the background, retrying (after {@link Builder#retryInterval}, doubling up to 30 s) while
     * the failure may pass by itself: {@code STORE_UNAVAILABLE}, {@code CONFIG_NOT_FOUND}, {@code CONFIG_INVALID},
     * {@code STORE_CORRUPT}, {@code LEASE_CONFLICT}. Each failed attempt is logged once per distinct message and
     * reported to {@link Listener#startRetrying}. The future completes with this node when it is {@link State#READY},
     * or exceptionally with the first other failure (the node is then closed). Closing the node, or cancelling the
     * future, stops the attempts.
     */
    public CompletableFuture<OverlayNode> startAsync() {
        CompletableFuture<OverlayNode> f = begin(true);
        f.whenComplete((n, t) -> {
            if (t instanceof CancellationException) {
                close();
            }
        });
        return f;
    }

    private CompletableFuture<OverlayNode> begin(boolean retry) {
        synchronized (lock) {
            if (begun) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "the node was started already");
            }
            if (closed) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "the node is closed");
            }
            begun = true;
            control = executor();
            store = executor();
        }
        control.execute(() -> attemptStart(retry));
        return started;
    }

    /** A one-thread executor whose thread is started here, by the caller, so it inherits the caller's namespace. */
    private ScheduledThreadPoolExecutor executor() {
        ScheduledThreadPoolExecutor e = new ScheduledThreadPoolExecutor(1, threads);
        e.setRemoveOnCancelPolicy(true);
        e.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
        e.prestartAllCoreThreads();
        return e;
    }

    /** The node's state now. */
    public State state() {
        return state;
    }

    /**
     * Adds a listener for this node's events from now on (those of the builder also hear the start).
     *
     * @return a registration whose {@code close()} removes the listener
     */
    public Registration addListener(Listener listener) {
        requireNonNull(listener, "listener");
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    /** How many times a listener threw (each listener's first failure is logged with its stack trace). */
    public long listenerErrors() {
        return listenerErrors.get();
    }

    /**
     * The node's current lease.
     *
     * @throws IllegalStateException if the node has not joined yet
     */
    public Lease lease() {
        Lease l = lease;
        if (l == null) {
            throw new IllegalStateException("the node has no lease yet (not started)");
        }
        return l;
    }

    /**
     * The network configuration read at start.
     *
     * @throws IllegalStateException if the node has not joined yet
     */
    public NetworkConfig networkConfig() {
        NetworkConfig c = config;
        if (c == null) {
            throw new IllegalStateException("the node has not read the network config yet (not started)");
        }
        return c;
    }

    /**
     * The MTU for containers ({@code FLANNEL_MTU}).
     *
     * @throws IllegalStateException if the node has not joined yet
     */
    public int mtu() {
        return running().mtu();
    }

    /** The other hosts' leases as currently known, ordered by subnet. */
    public List<Lease> peers() {
        return peerList;
    }

    /**
     * The data plane's counters since the start, summed over every subnet the node held (they keep counting up when
     * the node moves after losing its lease); after {@link #close()} their last values.
     *
     * @throws IllegalStateException if the node has not joined yet
     */
    public TrafficStats stats() {
        if (lease == null && dataPlaneTotals == null) {
            throw new IllegalStateException("the node has no data plane (not started)");
        }
        return nodeStats().traffic();
    }

    /**
     * The per-peer counters ({@link Backend.Network#peerStats()}), ordered by subnet, summed like {@link #stats()};
     * empty before the start and for a backend that cannot count per peer. Never throws.
     */
    public List<PeerStats> peerStats() {
        return nodeStats().peers();
    }

    /**
     * A snapshot of the node: state, lease, store reachability, counters node-wide and per peer, offloads. Never
     * throws: before the start it is all zeros; after {@link #close()} it reads {@link State#CLOSED} with the counters'
     * last values. Cheap enough to call at every metrics scrape (no store or system call for the udp backend).
     */
    public NodeStats nodeStats() {
        State s = state;
        Lease l = lease;
        TrafficStats traffic;
        List<PeerStats> peerCounters;
        List<OffloadStatus> offloads = List.of();
        synchronized (statsLock) {
            DataPlaneTotals totals = dataPlaneTotals;
            Backend.Network n = totals == null ? network : null;
            if (totals == null) {
                totals = retired;
            }
            traffic = totals.traffic;
            peerCounters = totals.peerList();
            if (n != null) {
                DataPlaneTotals now = totals.plus(read(n));
                traffic = now.traffic;
                peerCounters = now.peerList();
                offloads = offloads(n);
            }
        }
        boolean reachable = s == State.READY || s == State.LEASE_LOST;
        return new NodeStats(s, l, reachable, traffic, peerCounters, offloads);
    }

    /** A backend's counters; a backend whose stats fail (against its contract) reads as zeros, logged once. */
    private DataPlaneTotals read(Backend.Network n) {
        try {
            Map<Ipv4Prefix, PeerStats> byPeer = new TreeMap<>();
            for (PeerStats p : n.peerStats()) {
                byPeer.put(p.subnet(), p);
            }
            return new DataPlaneTotals(n.stats(), byPeer);
        } catch (RuntimeException e) {
            if (statsFailureLogged.compareAndSet(false, true)) {
                log.warn("the {} backend's counters could not be read; they read as zeros", n, e);
            }
            return DataPlaneTotals.NONE;
        }
    }

    private List<OffloadStatus> offloads(Backend.Network n) {
        try {
            return n.offloads();
        } catch (RuntimeException e) {
            if (statsFailureLogged.compareAndSet(false, true)) {
                log.warn("the {} backend's offloads could not be read", n, e);
            }
            return List.of();
        }
    }

    /**
     * On the control thread, before a data plane is closed: its counters join those of the data planes closed before
     * (when the node moves), or become the node's last values (when it closes).
     */
    private void retire(Backend.Network n, boolean last) {
        synchronized (statsLock) {
            DataPlaneTotals total = retired.plus(read(n));
            if (last) {
                dataPlaneTotals = total;
            } else {
                retired = total;
                network = null;
            }
        }
    }

    /** On the control thread: a peer left, so its counters restart if its subnet comes back. */
    private void forgetPeer(Ipv4Prefix subnet) {
        synchronized (statsLock) {
            if (retired.peers.containsKey(subnet)) {
                Map<Ipv4Prefix, PeerStats> rest = new TreeMap<>(retired.peers);
                rest.remove(subnet);
                retired = new DataPlaneTotals(retired.traffic, rest);
            }
        }
    }

    /** Counters of data planes; immutable. */
    private static final class DataPlaneTotals {
        static final DataPlaneTotals NONE = new DataPlaneTotals(TrafficStats.zero(), Map.of());

        final TrafficStats traffic;
        final Map<Ipv4Prefix, PeerStats> peers;

        DataPlaneTotals(TrafficStats traffic, Map<Ipv4Prefix, PeerStats> peers) {
            this.traffic = traffic;
            this.peers = peers;
        }

        /** These plus a live data plane's: only the live one's peers are listed, with what they had before added. */
        DataPlaneTotals plus(DataPlaneTotals live) {
            if (this == NONE) {
                return live;
            }
            Map<Ipv4Prefix, PeerStats> sum = new TreeMap<>();
            for (PeerStats p : live.peers.values()) {
                PeerStats before = peers.get(p.subnet());
                sum.put(p.subnet(), before == null ? p : p.plus(before));
            }
            return new DataPlaneTotals(traffic.plus(live.traffic), sum);
        }

        List<PeerStats> peerList() {
            return List.copyOf(peers.values());
        }
    }

    private Backend.Network running() {
        Backend.Network n = network;
        if (n == null) {
            throw new IllegalStateException("the node has no data plane (not started, or moving)");
        }
        return n;
    }

    /** The underlay interface this node uses (known once it starts). */
    public String interfaceName() {
        return interfaceName != null ? interfaceName : underlayInterface;
    }

    /** The address published in the lease (known once it starts, unless given to the builder). */
    public Inet4Address publicAddress() {
        return publicAddress != null ? publicAddress : givenPublicAddress;
    }

    /**
     * Leaves the network: stops the watch and renewals, closes the backend (see {@link Backend.Network#close()}) and,
     * if so built, releases the lease. Stops a {@link #startAsync()} in progress. Idempotent; may be called from a listener.
     */
    @Override
    public void close() {
        ScheduledThreadPoolExecutor c;
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            c = control;
        }
        started.cancel(false);
        if (c == null) {
            state = State.CLOSED;
            return;
        }
        RuntimeException failure = null;
        if (isControlThread()) {
            failure = shutdown();
        } else {
            try {
                failure = c.submit(this::shutdown).get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                failure = new IllegalStateException("node shutdown failed", e.getCause());
            } catch (RejectedExecutionException e) {
                failure = null; // shut down already (a failed start)
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = new IllegalStateException("interrupted while closing the node", e);
            } catch (Exception e) {
                failure = new IllegalStateException("node shutdown did not finish within 30 s", e);
            }
        }
        c.shutdownNow();
        store.shutdownNow();
        if (failure != null) {
            throw failure;
        }
    }

    /** Whether the caller is the control thread (a listener), so close() runs inline instead of waiting for itself. */
    private boolean isControlThread() {
        return Thread.currentThread() == controlThread;
    }

    /** On the control thread: undo everything; the first failure is returned, the others suppressed into it. */
    private RuntimeException shutdown() {
        RuntimeException first = null;
        cancelPending();
        if (watch != null) {
            try {
                watch.close();
            } catch (RuntimeException e) {
                first = e;
            }
            watch = null;
        }
        Backend.Network n = network;
        if (n != null) {
            retire(n, true);
            try {
                n.close();
            } catch (RuntimeException e) {
                first = addSuppressed(first, e);
            }
        }
        Lease l = lease;
        if (releaseOnClose && l != null) {
            try {
                allocator.release(l);
            } catch (RuntimeException e) {
                first = addSuppressed(first, e);
            }
        }
        setState(State.CLOSED, null);
        return first;
    }

    private static RuntimeException addSuppressed(RuntimeException first, RuntimeException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }

    // ---- start ----

    /** On the control thread: one attempt to join; on a passing failure (startAsync) the next is scheduled. */
    private void attemptStart(boolean retry) {
        controlThread = Thread.currentThread();
        if (closed || started.isDone()) {
            return;
        }
        try {
            join();
            started.complete(this);
        } catch (OverlayException e) {
            undoPartialStart();
            if (retry && retriable(e.kind()) && !closed && !started.isDone()) {
                Duration delay = startRetry;
                startRetry = min(startRetry.multipliedBy(2), max(retryInterval, MAX_RETRY));
                log.warn("node on {} could not join yet: {} (retrying in {} ms)", interfaceName(), e.getMessage(),
                        delay.toMillis());
                emit(l -> l.startRetrying(e, delay));
                try {
                    control.schedule(() -> attemptStart(true), delay.toMillis(), TimeUnit.MILLISECONDS);
                } catch (RejectedExecutionException closing) {
                    started.cancel(false);
                }
                return;
            }
            failStart(e);
        } catch (RuntimeException | Error e) {
            undoPartialStart();
            failStart(new OverlayException(Kind.DEVICE, "starting the node failed: " + e, e));
            if (e instanceof Error) {
                throw (Error) e;
            }
        }
    }

    private static boolean retriable(Kind kind) {
        switch (kind) {
            case STORE_UNAVAILABLE:
            case CONFIG_NOT_FOUND:
            case CONFIG_INVALID:
            case STORE_CORRUPT:
            case LEASE_CONFLICT:
                return true;
            default:
                return false;
        }
    }

    private void failStart(OverlayException e) {
        synchronized (lock) {
            closed = true;
        }
        setState(State.CLOSED, e);
        started.completeExceptionally(e);
        control.shutdown();
        store.shutdownNow();
    }

    /** The start sequence, on the control thread. */
    private void join() {
        resolveUnderlay();
        NetworkConfig c = allocator.networkConfig();
        config = c;
        Backend b = givenBackend != null ? givenBackend : Backends.create(c.backendType());
        if (!b.type().equalsIgnoreCase(c.backendType())) {
            throw new OverlayException(Kind.CONFIG_INVALID, "the network's backend type is '" + c.backendType()
                    + "' but this node runs '" + b.type() + "'");
        }
        backend = b;
        Ipv4Prefix previous = preferredSubnet;
        if (previous == null && subnetFile != null) {
            previous = SubnetFile.readPreviousSubnet(subnetFile).orElse(null);
        }
        registerBackend(previous);
        writeSubnetFile();
        watch = allocator.watch(new PeerListener());
        scheduleRenewal();
        Lease l = lease;
        primeLeaseMethods(l);
        log.info("node on {} joined {} with subnet {} (mtu {})", interfaceName, c.network(), l.subnet(),
                network.mtu());
        emit(x -> x.subnetChanged(null, l));
        setState(State.READY, null);
    }

    /**
     * Calls {@link Lease}'s and {@link LeaseAttributes}' {@code equals}, {@code hashCode} and {@code toString} once.
     * A record's first call of each bootstraps method handles: in a fresh JVM tens of milliseconds of one core
     * (overlay-bench/README.md). The watch compares leases from its first event on, which comes just after the node
     * reports ready, when its first packets may be in flight; the cost is paid here instead.
     */
    private static void primeLeaseMethods(Lease l) {
        LeaseAttributes a = l.attributes();
        Lease twin = new Lease(l.subnet(),
                new LeaseAttributes(a.publicIp(), a.publicIpv6(), a.backendType(), a.backendData()), l.expiration());
        String text = twin.toString();
        if (!twin.equals(l) || twin.hashCode() != l.hashCode()) {
            log.warn("a lease differs from its copy: {}", text); // a bug in the records, never the node's to fail on
        }
    }

    private void undoPartialStart() {
        if (watch != null) {
            try {
                watch.close();
            } catch (RuntimeException e) {
                log.debug("closing the watch after a failed start: {}", e.toString());
            }
            watch = null;
        }
        cancelPending();
        Backend.Network n = network;
        network = null;
        if (n != null) {
            try {
                n.close();
            } catch (RuntimeException e) {
                log.warn("cleanup after a failed start failed too", e);
            }
        }
        lease = null;
    }

    /** Finds the underlay interface and addresses, in this thread's network namespace. */
    private void resolveUnderlay() {
        try {
            NetworkInterface nif = findInterface();
            Inet4Address address = underlayAddress != null ? underlayAddress : firstIpv4(nif).orElseThrow(
                    () -> new OverlayException(Kind.ILLEGAL_ARGUMENT, "underlayInterface: " + nif.getName()
                            + " has no IPv4 address"));
            if (underlayAddress == null && underlayInterface == null && givenPublicAddress != null) {
                address = givenPublicAddress;
            }
            Inet4Address pub = givenPublicAddress != null ? givenPublicAddress : address;
            if (!LeaseRules.isUsablePublicIp(pub)) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "publicAddress: " + pub.getHostAddress()
                        + " (of " + nif.getName() + ") is not a usable unicast address; peers would ignore the lease");
            }
            interfaceName = nif.getName();
            interfaceAddress = address;
            publicAddress = pub;
            interfaceMtu = nif.getMTU();
        } catch (SocketException e) {
            throw new OverlayException(Kind.DEVICE, "cannot read network interfaces: " + e.getMessage(), e);
        }
    }

    private NetworkInterface findInterface() throws SocketException {
        if (underlayInterface != null) {
            NetworkInterface nif = NetworkInterface.getByName(underlayInterface);
            if (nif == null) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "underlayInterface: no interface named "
                        + underlayInterface);
            }
            return nif;
        }
        if (givenPublicAddress != null) {
            NetworkInterface nif = NetworkInterface.getByInetAddress(givenPublicAddress);
            if (nif == null) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "publicAddress: no interface holds "
                        + givenPublicAddress.getHostAddress() + "; name the underlay interface as well (NAT)");
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
        throw new OverlayException(Kind.ILLEGAL_ARGUMENT,
                "underlayInterface: no usable interface (up, not loopback, with an IPv4 address); name one");
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

    /** Sets up the backend, which acquires the lease through the context; kernel errors become OverlayExceptions. */
    private void registerBackend(Ipv4Prefix prefer) {
        Backend.Network n;
        try {
            n = backend.register(new NodeContext(prefer));
        } catch (OverlayException e) {
            throw e;
        } catch (IOException e) {
            throw deviceError(e);
        } catch (UncheckedIOException e) {
            throw deviceError(e.getCause());
        }
        network = n;
        lease = n.lease();
    }

    private OverlayException deviceError(IOException e) {
        String what = "the " + backend.type() + " backend on " + interfaceName + ": " + e.getMessage();
        if (e instanceof ErrnoException) {
            int errno = ((ErrnoException) e).errno();
            if (errno == ErrnoException.EPERM || errno == ErrnoException.EACCES) {
                return new OverlayException(Kind.NOT_PERMITTED, what + " (needs root or CAP_NET_ADMIN)", e);
            }
        }
        if (e instanceof BindException) {
            return new OverlayException(Kind.DEVICE, what + " (is another node or flanneld using the port?)", e);
        }
        return new OverlayException(Kind.DEVICE, what, e);
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

    /** What the node gives its backend. */
    private final class NodeContext implements Backend.Context {
        private final Ipv4Prefix prefer;

        NodeContext(Ipv4Prefix prefer) {
            this.prefer = prefer;
        }

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

        @Override
        public ThreadFactory threadFactory() {
            return threads;
        }
    }

    // ---- renewal and loss, on the control thread; store calls on the store thread ----

    private void scheduleRenewal() {
        Lease l = lease;
        if (l.isReservation() || closed) {
            return;
        }
        Duration left = Duration.between(clock.instant(), l.expiration());
        Duration delay = left.minus(renewMargin);
        if (delay.isNegative() || delay.isZero()) {
            // A TTL shorter than the margin (tests, tiny TTLs): renew at half-life instead of spinning.
            delay = left.dividedBy(2);
        }
        renewIn(delay);
    }

    /** (Re)schedules the renewal; an earlier pending one is replaced. */
    private void renewIn(Duration delay) {
        cancelPending();
        long ms = Math.max(0, delay.toMillis());
        try {
            pending = store.schedule(this::renewOnStore, ms, TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException closing) {
            pending = null;
        }
    }

    /** Renews now, unless a renewal is about to run anyway: our key changed or vanished in the store. */
    private void renewSoon() {
        if (state == State.LEASE_LOST || closed) {
            return;
        }
        ScheduledFuture<?> p = pending;
        if (p != null && !p.isDone() && p.getDelay(TimeUnit.MILLISECONDS) <= 0) {
            return;
        }
        renewIn(Duration.ZERO);
    }

    private void cancelPending() {
        ScheduledFuture<?> p = pending;
        pending = null;
        if (p != null) {
            p.cancel(false);
        }
    }

    /** On the store thread: renew (or restore) the lease; the outcome goes back to the control thread. */
    private void renewOnStore() {
        Lease current = lease;
        if (closed || current == null) {
            return;
        }
        try {
            Lease renewed = allocator.renew(current);
            onControlThread(() -> renewed(current, renewed));
        } catch (OverlayException e) {
            onControlThread(() -> renewFailed(current, e));
        } catch (RuntimeException e) {
            OverlayException o = new OverlayException(Kind.STORE_UNAVAILABLE, "renewing " + current.subnet()
                    + " failed unexpectedly: " + e, e);
            log.error("renewing {} failed unexpectedly", current.subnet(), e);
            onControlThread(() -> renewFailed(current, o));
        }
    }

    private void renewed(Lease before, Lease renewed) {
        if (closed) {
            return;
        }
        if (!renewed.subnet().equals(lease.subnet())) {
            // The node moved while this renewal ran: the renewal re-created a subnet we no longer use.
            try {
                store.execute(() -> allocator.release(renewed));
            } catch (RejectedExecutionException ignored) {
                // closing
            }
            return;
        }
        lease = renewed;
        renewFailing = false;
        renewRetry = retryInterval;
        log.debug("renewed {} until {}", renewed.subnet(), renewed.expiration());
        emit(l -> l.leaseRenewed(renewed));
        updateHealth();
        scheduleRenewal();
    }

    private void renewFailed(Lease before, OverlayException e) {
        if (closed || !before.subnet().equals(lease.subnet())) {
            return;
        }
        if (e.kind() == Kind.LEASE_LOST) {
            leaseLost(e);
            return;
        }
        Duration retry = renewRetry;
        renewRetry = min(renewRetry.multipliedBy(2), max(retryInterval, MAX_RENEW_RETRY));
        if (lease.expiration() != null) {
            Duration quarter = Duration.between(clock.instant(), lease.expiration()).dividedBy(4);
            if (quarter.compareTo(retry) < 0) {
                retry = quarter.isNegative() ? retryInterval : max(quarter, Duration.ofMillis(10));
            }
        }
        log.warn("renewing {} failed ({}); retrying in {} ms", lease.subnet(), e.getMessage(), retry.toMillis());
        renewFailing = true;
        storeError = e;
        updateHealth();
        renewIn(retry);
    }

    /** Another node holds our subnet: report it, then move to a new subnet unless told not to. */
    private void leaseLost(OverlayException e) {
        cancelPending();
        log.warn("lease {} lost: {}", lease.subnet(), e.getMessage());
        setState(State.LEASE_LOST, e);
        if (!moveOnLeaseLoss) {
            log.warn("node on {} keeps its data plane for {} until closed (moveOnLeaseLoss is off)", interfaceName,
                    lease.subnet());
            return;
        }
        move();
    }

    /** Rebuilds the backend around a new lease; retried after the retry interval while it fails. */
    private void move() {
        if (closed) {
            return;
        }
        Lease old = lease;
        try {
            Backend.Network n = network;
            if (n != null) {
                retire(n, false);
                n.close();
            }
            registerBackend(null);
        } catch (OverlayException e) {
            log.error("moving to a new subnet failed ({}); retrying in {} ms", e.getMessage(),
                    retryInterval.toMillis());
            lease = old;
            try {
                control.schedule(this::move, retryInterval.toMillis(), TimeUnit.MILLISECONDS);
            } catch (RejectedExecutionException closing) {
                // closed meanwhile
            }
            return;
        }
        writeSubnetFile();
        Lease now = lease;
        log.warn("node on {} moved from subnet {} to {}", interfaceName, old.subnet(), now.subnet());
        // The node that took our subnet is a peer now (its lease arrived while the subnet was ours).
        Lease taker = ownSubnetHolder;
        ownSubnetHolder = null;
        peers.remove(now.subnet());
        if (taker != null && taker.subnet().equals(old.subnet()) && routable(taker)) {
            peers.put(taker.subnet(), taker);
        }
        network.resetPeers(List.copyOf(peers.values()));
        publishPeers();
        emit(l -> l.subnetChanged(old, now));
        if (taker != null) {
            emit(l -> l.peerAdded(taker));
        }
        renewFailing = false;
        setState(State.READY, null);
        updateHealth();
        scheduleRenewal();
    }

    // ---- peers and health, on the control thread ----

    /** Moves watch callbacks onto the control thread, where they are serialized with everything else. */
    private final class PeerListener implements SubnetAllocator.LeaseListener {
        @Override
        public void onSnapshot(List<Lease> leases) {
            List<Lease> copy = List.copyOf(leases);
            onControlThread(() -> {
                watchFailing = false;
                applySnapshot(copy);
                updateHealth();
            });
        }

        @Override
        public void onEvents(List<LeaseEvent> events) {
            List<LeaseEvent> copy = List.copyOf(events);
            onControlThread(() -> {
                watchFailing = false;
                applyEvents(copy);
                updateHealth();
            });
        }

        @Override
        public void onError(Throwable error) {
            OverlayException e = error instanceof OverlayException ? (OverlayException) error
                    : new OverlayException(Kind.STORE_UNAVAILABLE, "lease watch: " + error, error);
            onControlThread(() -> {
                watchFailing = true;
                storeError = e;
                updateHealth();
            });
        }

        @Override
        public void onResumed() {
            onControlThread(() -> {
                watchFailing = false;
                updateHealth();
            });
        }
    }

    private void onControlThread(Runnable r) {
        if (closed) {
            return;
        }
        try {
            control.execute(() -> {
                if (!closed) {
                    r.run();
                }
            });
        } catch (RejectedExecutionException ignored) {
            // closed meanwhile
        }
    }

    /** READY or DEGRADED from what the watch and the renewals say; other states are left alone. */
    private void updateHealth() {
        if (state != State.READY && state != State.DEGRADED) {
            return;
        }
        boolean failing = watchFailing || renewFailing;
        setState(failing ? State.DEGRADED : State.READY, failing ? storeError : null);
    }

    private void applySnapshot(List<Lease> leases) {
        Lease own = lease;
        if (network == null || own == null) {
            return;
        }
        Map<Ipv4Prefix, Lease> before = new TreeMap<>(peers);
        peers.clear();
        boolean ownSeen = false;
        for (Lease l : leases) {
            if (l.subnet().equals(own.subnet())) {
                ownSeen = l.attributes().equals(attributes);
                ownSubnetHolder = ownSeen ? null : l;
            } else if (routable(l)) {
                peers.put(l.subnet(), l);
            }
        }
        network.resetPeers(List.copyOf(peers.values()));
        publishPeers();
        for (Lease gone : before.values()) {
            if (!peers.containsKey(gone.subnet())) {
                forgetPeer(gone.subnet());
                emit(x -> x.peerRemoved(gone));
            }
        }
        for (Lease now : peers.values()) {
            Lease was = before.get(now.subnet());
            if (was == null || !was.attributes().equals(now.attributes())) {
                emit(x -> x.peerAdded(now));
            }
        }
        log.debug("peers reset to {}", peers.keySet());
        if (!ownSeen) {
            log.warn("our lease {} is missing from the store or changed there; renewing it now", own.subnet());
            renewSoon();
        }
    }

    private void applyEvents(List<LeaseEvent> events) {
        Lease own = lease;
        if (network == null || own == null) {
            return;
        }
        List<LeaseEvent> forBackend = new ArrayList<>(events.size());
        List<Runnable> notes = new ArrayList<>();
        boolean ownTouched = false;
        for (LeaseEvent e : events) {
            Lease l = e.lease();
            Ipv4Prefix s = l.subnet();
            if (s.equals(own.subnet())) {
                boolean foreign = e.type() == LeaseEvent.Type.ADDED && !l.attributes().equals(attributes);
                ownSubnetHolder = foreign ? l : null;
                ownTouched |= foreign || e.type() == LeaseEvent.Type.REMOVED;
                continue;
            }
            if (e.type() == LeaseEvent.Type.ADDED) {
                if (!routable(l)) {
                    continue;
                }
                Lease was = peers.put(s, l);
                if (was == null || !was.attributes().equals(l.attributes())) {
                    notes.add(() -> emit(x -> x.peerAdded(l)));
                }
            } else {
                Lease was = peers.remove(s);
                if (was == null) {
                    continue;
                }
                forgetPeer(s);
                notes.add(() -> emit(x -> x.peerRemoved(was)));
            }
            forBackend.add(e);
        }
        if (!forBackend.isEmpty()) {
            network.peersChanged(Collections.unmodifiableList(forBackend));
            publishPeers();
        }
        notes.forEach(Runnable::run);
        if (ownTouched) {
            log.warn("our lease {} was removed or changed in the store; renewing it now", own.subnet());
            renewSoon();
        }
    }

    /** A peer lease the allocator passed on is checked again: a node never routes a lease the config refuses. */
    private boolean routable(Lease l) {
        Optional<String> problem = LeaseRules.check(config, l);
        if (problem.isEmpty()) {
            return true;
        }
        if (rejectedPeers.size() < 10_000 && rejectedPeers.add(l.subnet() + "=" + l.attributes())) {
            log.warn("ignoring peer lease: {}", problem.get());
        }
        return false;
    }

    private void publishPeers() {
        peerList = List.copyOf(peers.values());
    }

    // ---- events ----

    private void setState(State next, OverlayException cause) {
        State previous = state;
        if (previous == next || previous == State.CLOSED) {
            return;
        }
        state = next;
        if (next == State.DEGRADED) {
            log.warn("node on {} is degraded: {}", interfaceName(), cause == null ? "" : cause.getMessage());
        } else if (previous == State.DEGRADED && next == State.READY) {
            log.info("node on {} is ready again", interfaceName());
        }
        emit(l -> l.stateChanged(previous, next, cause));
    }

    /** Calls every listener; one that throws is counted, logged once, and does not stop the others. */
    private void emit(java.util.function.Consumer<Listener> call) {
        for (Listener l : listeners) {
            try {
                call.accept(l);
            } catch (RuntimeException e) {
                listenerErrors.incrementAndGet();
                if (listenersLogged.add(l)) {
                    log.warn("a node listener ({}) threw; the node goes on (later failures are only counted)",
                            l.getClass().getName(), e);
                }
            }
        }
    }

    private static Duration min(Duration a, Duration b) {
        return a.compareTo(b) <= 0 ? a : b;
    }

    private static Duration max(Duration a, Duration b) {
        return a.compareTo(b) >= 0 ? a : b;
    }

    /** Daemon threads named after the node. */
    private static final class DefaultThreads implements ThreadFactory {
        private final String prefix;
        private final AtomicInteger count = new AtomicInteger();

        DefaultThreads(String prefix) {
            this.prefix = prefix;
        }

        @Override
        public Thread newThread(Runnable r) {
            Thread t = new Thread(r, prefix + "-" + count.incrementAndGet());
            t.setDaemon(true);
            return t;
        }
    }

    /**
     * Options for an {@link OverlayNode}. Every bad value is an {@link OverlayException} of kind
     * {@code ILLEGAL_ARGUMENT} whose message names the option.
     */
    public static final class Builder {
        private SubnetAllocator allocator;
        private Backend backend;
        private Inet4Address publicAddress;
        private String underlayInterface;
        private Inet4Address underlayAddress;
        private Path subnetFile;
        private boolean ipMasq;
        private Duration renewMargin = Duration.ofMinutes(60);
        private boolean releaseOnClose;
        private boolean moveOnLeaseLoss = true;
        private Duration retryInterval = Duration.ofSeconds(1);
        private Clock clock = Clock.systemUTC();
        private Ipv4Prefix preferredSubnet;
        private ThreadFactory threadFactory;
        private final List<Listener> listeners = new ArrayList<>();

        private Builder() {
        }

        /** Required: where leases come from ({@code LocalSubnetAllocator}, {@code EtcdSubnetAllocator}). */
        public Builder allocator(SubnetAllocator allocator) {
            this.allocator = option("allocator", allocator);
            return this;
        }

        /**
         * How traffic is carried ({@code UdpBackend}, {@code VxlanBackend}, ...). Default: the backend the network's
         * config names ({@code Backend.Type}), with its default options, from {@link Backends}. A backend given here
         * must be of the config's type.
         */
        public Builder backend(Backend backend) {
            this.backend = option("backend", backend);
            return this;
        }

        /**
         * The address published in the lease ({@code --public-ip}): a usable unicast address (not 0.0.0.0/8,
         * loopback, multicast or broadcast), or peers would ignore the lease. Default: the underlay interface's
         * address. If no underlay interface is set, the interface holding this address is used.
         */
        public Builder publicAddress(Inet4Address publicAddress) {
            option("publicAddress", publicAddress);
            if (!LeaseRules.isUsablePublicIp(publicAddress)) {
                throw illegal("publicAddress: " + publicAddress.getHostAddress()
                        + " is not a usable unicast address; peers would ignore the lease");
            }
            this.publicAddress = publicAddress;
            return this;
        }

        /**
         * The interface that carries encapsulated traffic ({@code --iface}), looked up when the node starts, in its
         * namespace. Default: the interface holding {@link #publicAddress}, else the first interface that is up, not
         * loopback and has an IPv4 address.
         */
        public Builder underlayInterface(String name) {
            if (option("underlayInterface", name).isEmpty()) {
                throw illegal("underlayInterface must not be empty");
            }
            this.underlayInterface = name;
            return this;
        }

        /**
         * The underlay interface's address the backend binds to (flanneld's {@code --iface <IP>}, where that IP is
         * used rather than the interface's first; a daemon that picks addresses as flanneld does passes its pick).
         * Default: the first IPv4 address of the underlay interface.
         */
        public Builder underlayAddress(Inet4Address address) {
            this.underlayAddress = option("underlayAddress", address);
            return this;
        }

        /**
         * Where to write flannel's subnet.env (whose {@code FLANNEL_SUBNET} is also read back at start as the
         * previous subnet), or {@code null} for none. Default: none, so that nodes of one JVM never share a file nor
         * overwrite a real flanneld's; give each node its own path. {@code overlayd} passes flanneld's
         * {@code /run/flannel/subnet.env}.
         */
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
            this.renewMargin = positive("renewMargin", renewMargin);
            return this;
        }

        /** Whether {@link OverlayNode#close()} gives the lease back. Default false, as flanneld. */
        public Builder releaseOnClose(boolean releaseOnClose) {
            this.releaseOnClose = releaseOnClose;
            return this;
        }

        /**
         * What the node does when another node holds its subnet ({@link State#LEASE_LOST}): with {@code true} (the
         * default) it acquires a new subnet, rebuilds its devices and routes and subnet file around it, and reports
         * {@link Listener#subnetChanged}; with {@code false} it stays in {@code LEASE_LOST}, its data plane untouched,
         * until closed, so that a daemon can exit and let its supervisor restart the containers' network (flanneld
         * exits on a lost lease).
         */
        public Builder moveOnLeaseLoss(boolean moveOnLeaseLoss) {
            this.moveOnLeaseLoss = moveOnLeaseLoss;
            return this;
        }

        /**
         * The first delay before retrying a store operation that failed: a {@link OverlayNode#startAsync()} attempt
         * (later ones double up to 30 s), a renewal (doubling up to 60 s, and never later than a quarter of the
         * lease's remaining time), a move. Default 1 s, as flanneld's config retry.
         */
        public Builder retryInterval(Duration retryInterval) {
            this.retryInterval = positive("retryInterval", retryInterval);
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
            this.clock = option("clock", clock);
            return this;
        }

        /**
         * Makes every thread the node starts: its control and store threads, and the backend's threads (through
         * {@link Backend.Context#threadFactory()}). Give {@code NetworkNamespace.threadFactory()} to run the node in a
         * network namespace from any thread. Default: daemon threads named {@code overlay4j-node-N-M}, started by the
         * thread that calls {@code start()}.
         */
        public Builder threadFactory(ThreadFactory threadFactory) {
            this.threadFactory = option("threadFactory", threadFactory);
            return this;
        }

        /** Adds a listener that hears every event of the node, from its start on. */
        public Builder listener(Listener listener) {
            listeners.add(option("listener", listener));
            return this;
        }

        /**
         * Checks the options. The underlay interface is looked up by {@link OverlayNode#start()}, in the node's
         * network namespace.
         *
         * @throws OverlayException {@code ILLEGAL_ARGUMENT} if the allocator is missing
         */
        public OverlayNode build() {
            if (allocator == null) {
                throw illegal("allocator is required");
            }
            return new OverlayNode(this);
        }

        private static <T> T option(String name, T value) {
            if (value == null) {
                throw illegal(name + " must not be null");
            }
            return value;
        }

        private static Duration positive(String name, Duration value) {
            if (option(name, value).isNegative() || value.isZero()) {
                throw illegal(name + " must be positive: " + value);
            }
            return value;
        }

        private static OverlayException illegal(String message) {
            return new OverlayException(Kind.ILLEGAL_ARGUMENT, "OverlayNode: " + message);
        }
    }
}
