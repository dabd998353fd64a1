package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OffloadStatus;
import io.overlay4j.PeerStats;
import io.overlay4j.TrafficStats;
import io.overlay4j.TunDevice;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.internal.DatagramPort;
import io.overlay4j.udp.internal.EgressPath;
import io.overlay4j.udp.internal.IngressPath;
import io.overlay4j.udp.internal.PathLock;
import io.overlay4j.udp.internal.RateLimitedErrorLogger;
import io.overlay4j.udp.internal.TrafficCounters;
import io.overlay4j.udp.internal.Warmup;
import java.io.IOException;
import java.nio.channels.ClosedChannelException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The userspace data plane between a TUN device and a UDP socket, for any {@link Encapsulator}: packets go TUN →
 * validate → peer lookup → encapsulate → UDP (egress) and UDP → admit → decapsulate → TUN (ingress), on two threads.
 * Each thread waits on its own source (the egress thread on the TUN, the ingress thread on the socket), drains what
 * is queued without waiting, then takes a turn on the other direction if it is free: the ingress thread sends at once
 * the replies its TUN writes caused (a ping's echo reply, TCP's ACKs), which would otherwise cost a wake-up of the
 * egress thread. While the TUN of a {@link LinuxTunDevice} stays quiet for 5 ms the egress thread parks and the
 * ingress thread waits on both sources with one {@code poll(2)}, so a quiet node's ping or request crosses one thread
 * per host; after a wait that blocked it reads only what the wait reported, without a last read that finds a source
 * empty; a turn with more work than one thread keeps up with wakes the egress thread again
 * ({@value #SOLO_AFTER_MILLIS_PROPERTY}). One thread at a time works on a direction, so a flow's packets keep their
 * order. Nothing is allocated, boxed or logged per packet; every dropped packet is counted under one
 * {@link io.overlay4j.DropReason}; unexpected exceptions go to the error handler and the loop goes on.
 *
 * <p>Single packets that follow each other to one peer with one datagram length leave together with one segmented
 * send (UDP GSO). Before the first packet, {@link #start()} warms the JIT up on synthetic loopback traffic
 * ({@link Builder#warmUp}), so that a fresh node's first packets do not run interpreted.
 *
 * <p><b>Offloads are capabilities of the devices, negotiated when they were opened</b>, each falling back on its
 * own: a TUN opened with offloads that the kernel granted ({@link TunDevice#vnetHeader()}) hands over TCP/UDP
 * super-packets of up to 64 KiB, which are split into MTU-sized packets, each encapsulated for the peer, and sent
 * with UDP GSO where the socket has it; received datagrams (a GRO run from a socket opened with
 * {@link UdpSocket.Options#gro()}) are admitted one by one and coalesced into TCP super-packets for the TUN, and
 * runs of one flow's UDP datagrams into USO super-datagrams where the kernel takes them (Linux 6.2 or later; a TUN
 * that refuses one gets that run datagram by datagram, and no more UDP is merged). Without
 * them every read, send, receive and write is one packet. On the wire nothing changes: one complete inner packet per
 * datagram, so offloaded and plain nodes (and flanneld, or the kernel's VXLAN device) interoperate.
 *
 * <p><b>Egress</b>: a destination no peer owns is answered with an ICMP net-unreachable written back into the TUN
 * (as flannel does) and counted as {@link io.overlay4j.DropReason#NO_ROUTE}; the lookup comes before the
 * encapsulation, so a TTL-1 packet to an unleased destination gets that answer too. Failed sends are counted as
 * {@link io.overlay4j.DropReason#SEND_FAILED}. <b>Ingress admission</b>: a datagram is accepted only from the public
 * address (and port, where the encapsulation fixes it) of a current lease, only with an inner source in that lease's
 * subnet and an inner destination in this node's own subnet; anything else is dropped under its own reason and never
 * answered (see {@link Builder#admitAnySenderAddress} for the one documented relaxation). A packet counts as
 * forwarded once its send or TUN write succeeded.
 *
 * <p>Ownership: the forwarder uses, but does not own, the TUN device and the socket unless told so with
 * {@link Builder#ownsTun} and {@link Builder#ownsSocket}; see {@link #close()}. Peers are an immutable
 * {@link PeerTable} for this forwarder's encapsulator, swapped with one volatile write and read once per packet.
 *
 * <p>Counting: {@link #stats()} node-wide per direction and drop reason, {@link #peerStats()} per peer (sent to it,
 * admitted from it, last seen). Each direction's thread is the only writer of its counters (plain writes with release
 * semantics, no atomics per packet); the per-peer ones are updated where the packet's peer is at hand anyway (the
 * egress lookup, the ingress admission), and pass from table to table as peers are renewed.
 *
 * <p>The egress and ingress halves ({@code EgressPath}, {@code IngressPath} in the internal package) each own their
 * buffers and counters and depend only on one TUN queue and one socket, so several pipelines (one per queue of a
 * multi-queue TUN) can run side by side on one peer table.
 */
public final class Forwarder implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Forwarder.class);
    private static final long JOIN_MILLIS = 5000;
    private static final int NEW = 0;
    private static final int STARTED = 1;
    private static final int CLOSED = 2;
    /** TUN reads per turn on the egress side before the thread looks at the other direction. */
    private static final int EGRESS_TURN = 8;
    /** Receives per turn on the ingress side (with GRO each may be a run of datagrams), then one flush to the TUN. */
    private static final int INGRESS_TURN = 8;
    /**
     * The system property giving the default {@link Builder#spin} in microseconds (default
     * {@value #DEFAULT_SPIN_MICROS}); 0 turns spinning off.
     */
    public static final String SPIN_MICROS_PROPERTY = "overlay4j.forwarder.spinMicros";
    private static final long DEFAULT_SPIN_MICROS = 0;
    /**
     * The system property that, set to {@code false}, makes each thread keep to its own direction even on a pollable
     * TUN (the loops before the threads took turns): for measurements.
     */
    public static final String TURNS_PROPERTY = "overlay4j.forwarder.turns";
    /**
     * The system property giving, in milliseconds, how long the TUN of a {@link LinuxTunDevice} must stay quiet
     * before the egress thread parks and the ingress thread serves both directions alone (default
     * {@value #DEFAULT_SOLO_AFTER_MILLIS}); 0 keeps both threads waiting on their own sources: for measurements.
     */
    public static final String SOLO_AFTER_MILLIS_PROPERTY = "overlay4j.forwarder.soloAfterMillis";
    private static final long DEFAULT_SOLO_AFTER_MILLIS = 5;
    /**
     * The system property giving, in milliseconds, how often the thread serving a quiet node alone wakes up by itself
     * and takes a turn that finds nothing, for {@value #TICK_WINDOW_SECONDS} s after the last packet (default
     * {@value #DEFAULT_SOLO_TICK_MILLIS}); 0 waits without limit: for measurements.
     */
    public static final String SOLO_TICK_MILLIS_PROPERTY = "overlay4j.forwarder.soloTickMillis";
    private static final long DEFAULT_SOLO_TICK_MILLIS = 4;
    /** How long after its last packet a quiet node's thread keeps its tick; then it waits without limit. */
    private static final long TICK_WINDOW_SECONDS = 5;
    private static final long TICK_WINDOW_NANOS = TimeUnit.SECONDS.toNanos(TICK_WINDOW_SECONDS);
    /** The system property that turns the JIT warm-up off by default ({@code false}); see {@link Builder#warmUp}. */
    public static final String WARM_UP_PROPERTY = "overlay4j.forwarder.warmUp";
    /** The most time a warm-up may take; {@link #start()} waits a little longer for it. */
    private static final long WARM_UP_NANOS = TimeUnit.MILLISECONDS.toNanos(1500);
    /** How long {@link #start()} and the ingress thread wait for the egress thread's warm-up at most. */
    private static final long WARM_UP_WAIT_NANOS = WARM_UP_NANOS + TimeUnit.SECONDS.toNanos(2);
    /**
     * Turns each thread takes without waiting before its loop, with {@link Builder#warmUp}: enough for the JIT's
     * optimising compiler (about 20 ms of system calls that find nothing, or real packets if some are queued).
     */
    private static final int WARM_UP_TURNS = 12_000;
    /** {@link #afterTurn}: block in {@link #awaitWork}. (Linux's {@code System.nanoTime()} counts from boot: never this.) */
    private static final long WAIT = Long.MIN_VALUE;
    /**
     * A solo wait at least this long found both sources empty when it began: the turns after it read only what their
     * wait reported, once (see {@link #leanTurn}), up to {@link #LEAN_TURNS} of them until a wait blocks again.
     */
    private static final long LEAN_AFTER_NANOS = TimeUnit.MICROSECONDS.toNanos(50);
    /**
     * Lean turns after a blocking wait: a ping's round trip takes two on the host that sent it (the request out, the
     * reply in), whose second wait may not block (the reply came while the thread still ran); a burst takes the usual
     * draining turns after these.
     */
    private static final int LEAN_TURNS = 2;
    private static final int READY_BITS = UdpSocket.SOCKET_READABLE | UdpSocket.TUN_READABLE;

    private final TunDevice tun;
    private final UdpSocket socket;
    private final Encapsulator encapsulator;
    private final int port;
    private final int mtu;
    private final Ipv4Prefix ownSubnet;
    private final boolean checkSender;
    private final Consumer<Throwable> errorHandler;
    private final ThreadFactory threadFactory;
    private final boolean ownsTun;
    private final boolean ownsSocket;
    private final AtomicReference<PeerTable> peers;
    private final TrafficCounters egressCounters = new TrafficCounters();
    private final TrafficCounters ingressCounters = new TrafficCounters();
    private final EgressPath egress;
    private final IngressPath ingress;
    private final AtomicInteger state = new AtomicInteger(NEW);
    /** Whether the TUN can be waited on without reading: then the two threads take turns on both directions. */
    private final boolean turns;
    private final long spinNanos;
    /**
     * The TUN when the threads may go solo (a {@link LinuxTunDevice} with the turns loop): the egress thread parks
     * after {@link #soloAfterMillis} without a TUN packet and the ingress thread then waits on both sources; else null.
     */
    private final LinuxTunDevice soloTun;
    private final long soloAfterMillis;
    /** How often the solo thread's wait times out (-1: never); see {@link #awaitWork}. */
    private final long soloTickMillis;
    /** Whether the egress thread is parked (or about to park) and the ingress thread must wait on the TUN too. */
    private volatile boolean egressParked;
    /** Set when the ingress thread's loop has ended: the egress thread must not park any more. */
    private volatile boolean ingressDone;
    /**
     * Set when the ingress thread has finished its warm-up turns: before, the egress thread must not park, or the
     * synthetic counts of those turns would wake it again.
     */
    private volatile boolean ingressLive;
    /**
     * Ingress thread only: what its last solo wait reported ready ({@link UdpSocket#SOCKET_READABLE},
     * {@link UdpSocket#TUN_READABLE}) if that wait blocked, else 0; consumed by the next turn.
     */
    private int leanReady;
    /** Ingress thread only: the lean turns left until a wait blocks again. */
    private int leanTurnsLeft;
    /**
     * When the solo thread last did work, or the egress thread last parked ({@code System.nanoTime()}): the tick's
     * window runs from there.
     */
    private volatile long lastWorkNanos = System.nanoTime();
    private final PathLock egressLock = new PathLock();
    private final PathLock ingressLock = new PathLock();
    private final boolean warmUp;
    private final CountDownLatch warmedUp = new CountDownLatch(1);
    /** Counted down by each thread when its warm-up turns are done (with {@link #turns}). */
    private final CountDownLatch turnsWarmed = new CountDownLatch(2);

    private volatile boolean running;
    private volatile Thread egressThread;
    private volatile Thread ingressThread;

    private Forwarder(Builder b) {
        this.tun = b.tun;
        this.socket = b.socket;
        this.encapsulator = b.encapsulator;
        this.port = b.port;
        this.mtu = b.mtu;
        this.ownSubnet = b.ownSubnet;
        this.checkSender = !b.admitAnySenderAddress;
        this.errorHandler = b.errorHandler != null ? b.errorHandler
                : new RateLimitedErrorLogger(LOG, "forwarder " + b.tun.name(), 1, TimeUnit.SECONDS);
        this.threadFactory = b.threadFactory;
        this.ownsTun = b.ownsTun;
        this.ownsSocket = b.ownsSocket;
        this.peers = new AtomicReference<>(compatible(b.peers == null ? PeerTable.empty(encapsulator) : b.peers));
        Consumer<Throwable> report = this::report;
        DatagramPort datagrams = DatagramPort.of(socket);
        this.egress = new EgressPath(tun, datagrams, encapsulator, mtu, ownSubnet.networkInt(), peers, egressCounters,
                report);
        this.ingress = new IngressPath(tun, datagrams, encapsulator, mtu, ownSubnet, b.network, checkSender, peers,
                ingressCounters, report);
        // The property is for measurements (A/B of the two loops); the turns loop is the default.
        this.turns = tun.pollable() && !"false".equals(System.getProperty(TURNS_PROPERTY));
        this.spinNanos = b.spin != null ? b.spin.toNanos() : defaultSpinNanos();
        this.soloAfterMillis = defaultSoloAfterMillis();
        this.soloTickMillis = defaultSoloTickMillis();
        this.soloTun = turns && soloAfterMillis > 0 && tun instanceof LinuxTunDevice ? (LinuxTunDevice) tun : null;
        this.warmUp = b.warmUp != null ? b.warmUp : !"false".equals(System.getProperty(WARM_UP_PROPERTY));
    }

    private static long defaultSoloTickMillis() {
        try {
            long millis = Long.getLong(SOLO_TICK_MILLIS_PROPERTY, DEFAULT_SOLO_TICK_MILLIS);
            return millis > 0 ? Math.min(millis, 60_000) : -1;
        } catch (SecurityException e) {
            return DEFAULT_SOLO_TICK_MILLIS;
        }
    }

    private static long defaultSpinNanos() {
        try {
            long micros = Long.getLong(SPIN_MICROS_PROPERTY, DEFAULT_SPIN_MICROS);
            return micros > 0 ? Math.min(micros, 1_000_000) * 1000 : 0;
        } catch (SecurityException e) {
            return DEFAULT_SPIN_MICROS * 1000;
        }
    }

    private static long defaultSoloAfterMillis() {
        try {
            return Math.max(0, Math.min(Long.getLong(SOLO_AFTER_MILLIS_PROPERTY, DEFAULT_SOLO_AFTER_MILLIS), 60_000));
        } catch (SecurityException e) {
            return DEFAULT_SOLO_AFTER_MILLIS;
        }
    }

    /** A builder; {@link Builder#tun}, {@link Builder#socket} and {@link Builder#ownSubnet} are required. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Starts the egress and the ingress thread. They are created from the calling thread, so (with the default thread
     * factory) they inherit its network namespace. With {@link Builder#warmUp} (the default) the egress thread first
     * runs the path on synthetic loopback traffic (at most 1.5 s, then up to 0.5 s for the JIT to finish; once per
     * configuration and JVM), then both threads take their warm-up turns together (tens of milliseconds), and this
     * method returns when that is done and the JIT has finished again (up to 0.5 s). Call once.
     *
     * @throws IllegalStateException if started before or closed
     */
    public void start() {
        if (!state.compareAndSet(NEW, STARTED)) {
            throw new IllegalStateException("forwarder already started or closed");
        }
        running = true;
        try {
            Thread out = newThread(this::runEgress, "overlay4j-egress-" + tun.name());
            Thread in = newThread(this::runIngress, "overlay4j-ingress-" + tun.name());
            egressThread = out;
            out.start();
            ingressThread = in;
            in.start();
        } catch (RuntimeException | Error e) {
            // A thread factory or the JVM refused: stop whatever started, leave the forwarder closed.
            close();
            throw e;
        }
        if (warmUp) {
            try {
                warmedUp.await(WARM_UP_WAIT_NANOS, TimeUnit.NANOSECONDS);
                if (turns && turnsWarmed.await(2, TimeUnit.SECONDS)) {
                    // What the turns queued for the JIT is installed before the first real packet, not while it is
                    // handled: else the first pings share the CPU with the compiler.
                    Warmup.awaitQuietCompiler(System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(500));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private Thread newThread(Runnable r, String name) {
        if (threadFactory != null) {
            Thread t = threadFactory.newThread(r);
            t.setName(t.getName() + "-" + name.substring("overlay4j-".length()));
            return t;
        }
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    private PeerTable compatible(PeerTable table) {
        requireNonNull(table, "table");
        if (table.encapsulator() == encapsulator) {
            return table;
        }
        if (table.size() == 0 && table.skippedLeases().isEmpty()) {
            return PeerTable.empty(encapsulator);
        }
        throw new IllegalArgumentException("the peer table was built for " + table.encapsulator() + ", not for "
                + encapsulator);
    }

    /**
     * Installs a new peer table; both directions use it from their next packet on. Per-peer counters are those of the
     * table's peers: a table built from the current one ({@link PeerTable#toBuilder()}, {@link PeerTable#apply}) keeps
     * them, one built from scratch starts them at zero.
     *
     * @throws IllegalArgumentException if the table has peers built for another encapsulator
     */
    public void peers(PeerTable table) {
        peers.set(compatible(table));
    }

    /** The current peer table. */
    public PeerTable peers() {
        return peers.get();
    }

    /**
     * Applies lease events to a copy of the current table, with peers at {@link #port()}, and installs it. Leases the
     * encapsulator cannot use are skipped ({@link PeerTable#skippedLeases()}). Call from one thread at a time.
     */
    public void peersChanged(List<LeaseEvent> events) {
        peers.set(peers.get().apply(events, port));
    }

    /**
     * Replaces all peers with these leases, at {@link #port()}; unusable leases are skipped. Peers that stay keep their
     * counters. Call from one thread at a time.
     */
    public void resetPeers(Collection<Lease> leases) {
        PeerTable.Builder b = peers.get().toBuilder().clear();
        for (Lease lease : leases) {
            b.put(lease, port);
        }
        peers.set(b.build());
    }

    /** The encapsulation. */
    public Encapsulator encapsulator() {
        return encapsulator;
    }

    /** The UDP port peers listen on. */
    public int port() {
        return port;
    }

    /** The largest inner packet forwarded (the TUN MTU). */
    public int mtu() {
        return mtu;
    }

    /** This node's subnet: admitted inner destinations lie in it, ICMP replies come from its network address. */
    public Ipv4Prefix ownSubnet() {
        return ownSubnet;
    }

    /**
     * The counters of each current peer, ordered by subnet ({@link Peer#stats()}): packets sent to it, packets
     * admitted from it, when the last one arrived.
     */
    public List<PeerStats> peerStats() {
        List<Peer> current = peers.get().peers();
        List<PeerStats> out = new ArrayList<>(current.size());
        for (Peer p : current) {
            out.add(p.stats());
        }
        return out;
    }

    /**
     * The offloads of this forwarder's devices: virtio headers on the TUN, GSO and GRO on the socket (GSO is withdrawn
     * once a segmented send fails with it). Each is {@code ON} if granted, {@code REFUSED} if asked for but not
     * granted, {@code OFF} if not asked for.
     *
     * @param asked        whether the TUN and the socket were opened with offloads
     * @param socketDevice the name under which the socket's offloads are reported, e.g. the underlay interface
     */
    public List<OffloadStatus> offloads(boolean asked, String socketDevice) {
        return List.of(new OffloadStatus(tun.name(), OffloadStatus.Feature.TUN_VNET_HEADER, status(asked,
                        vnetHeader())),
                new OffloadStatus(socketDevice, OffloadStatus.Feature.UDP_GSO, status(asked, socket.gsoSupported())),
                new OffloadStatus(socketDevice, OffloadStatus.Feature.UDP_GRO, status(asked, socket.groEnabled())));
    }

    private static OffloadStatus.Status status(boolean asked, boolean granted) {
        return !asked ? OffloadStatus.Status.OFF : granted ? OffloadStatus.Status.ON : OffloadStatus.Status.REFUSED;
    }

    /** Whether the TUN side runs with virtio headers: super-packet reads, coalesced writes. */
    public boolean vnetHeader() {
        return egress.vnetHeader();
    }

    /** A snapshot of the counters of both directions (each counter exact, not all taken at one instant). */
    public TrafficStats stats() {
        return TrafficCounters.snapshot(egressCounters, ingressCounters);
    }

    /** Whether the threads were started and {@link #close()} has not been called. */
    public boolean isRunning() {
        return running;
    }

    /**
     * Stops forwarding. Idempotent.
     *
     * <ol>
     *   <li>Both loops are told to stop.</li>
     *   <li>The ingress thread is woken: an owned socket is closed; otherwise {@link UdpSocket#wakeup()} wakes it (an
     *   eventfd, so also where no datagram could reach the socket) and the socket stays open for its owner.</li>
     *   <li>The egress thread is woken by closing an owned TUN device. On a {@link LinuxTunDevice} the forwarder does
     *   not own, the egress thread waits for packets a few milliseconds at a time (see
     *   {@value #SOLO_AFTER_MILLIS_PROPERTY}) or is parked, so it ends within that time. Any other TUN device the
     *   forwarder does not own cannot be woken without closing it, so the egress thread ends when its owner closes the
     *   device or the next packet arrives; use {@link #awaitTermination} after closing the device to wait for it.</li>
     *   <li>Joins the threads it woke (up to 5 seconds each).</li>
     * </ol>
     */
    @Override
    public void close() {
        int previous = state.getAndSet(CLOSED);
        if (previous == CLOSED) {
            return;
        }
        running = false;
        ingress.stop();
        if (ownsSocket) {
            socket.close();
        } else if (previous == STARTED) {
            socket.wakeup();
        }
        if (ownsTun) {
            tun.close();
        }
        if (previous != STARTED) {
            return;
        }
        Thread out = egressThread;
        if (out != null) {
            LockSupport.unpark(out); // a parked egress thread (solo) sees that it must stop
        }
        join(ingressThread, JOIN_MILLIS);
        if (ownsTun || soloTun != null) {
            join(egressThread, JOIN_MILLIS);
        }
    }

    /**
     * Waits for both threads to end after {@link #close()} (and, for devices the forwarder does not own, after their
     * owner closed them).
     *
     * @return whether both have ended (true also if never started)
     */
    public boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        for (Thread t : new Thread[] {egressThread, ingressThread}) {
            if (t == null) {
                continue;
            }
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left > 0) {
                t.join(left);
            }
            if (t.isAlive()) {
                return false;
            }
        }
        return true;
    }

    private static void join(Thread t, long millis) {
        if (t == null || t == Thread.currentThread()) {
            return;
        }
        try {
            t.join(millis);
            if (t.isAlive()) {
                LOG.warn("{} did not stop within {} ms", t.getName(), millis);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void report(Throwable error) {
        try {
            errorHandler.accept(error);
        } catch (Throwable ignored) {
            // An error handler that throws must not end the data plane.
        }
    }

    private void runEgress() {
        if (warmUp) {
            try {
                // On this thread: in its network namespace, and off the caller's.
                Warmup.run(encapsulator, mtu, egress.vnetHeader(), socket.groEnabled(), checkSender, WARM_UP_NANOS);
            } catch (Throwable t) {
                LOG.debug("warm-up failed", t);
            } finally {
                warmedUp.countDown();
            }
        }
        if (turns) {
            runTurns(true);
            return;
        }
        try {
            while (running) {
                try {
                    egress.step();
                } catch (ClosedChannelException e) {
                    break;
                } catch (IOException | RuntimeException e) {
                    if (!running || !tun.isOpen()) {
                        break;
                    }
                    report(e);
                }
            }
        } catch (Throwable t) {
            if (running) {
                report(t);
            }
        }
    }

    private void runIngress() {
        if (turns) {
            runTurns(false);
            return;
        }
        try {
            while (running) {
                try {
                    // Waits where close() can wake it without a datagram (UdpSocket#wakeup), then drains.
                    socket.awaitReadable();
                    if (!running) {
                        break;
                    }
                    ingress.drain(INGRESS_TURN);
                } catch (ClosedChannelException e) {
                    break;
                } catch (IOException | RuntimeException e) {
                    if (!running || !socket.isOpen()) {
                        break;
                    }
                    report(e);
                }
            }
        } catch (Throwable t) {
            if (running) {
                report(t);
            }
        }
    }

    /**
     * The loop of both threads on a pollable TUN. Each thread owns one direction (its source is what it waits on),
     * drains it without waiting, then takes a turn on the other direction if that one is free: the ingress thread,
     * having written packets into the TUN, usually finds the replies they caused (a ping's echo reply, TCP's ACKs)
     * already queued there and sends them at once, where the egress thread would first have to be woken. With
     * {@link Builder#spin} both keep polling both directions that long after their last work before they block. On a
     * {@link LinuxTunDevice} the egress thread parks when its TUN stays quiet ({@link #parkEgress}). One
     * {@link PathLock} per direction: one thread at a time reads a source and uses its buffers, so a flow's
     * packets keep their order.
     */
    private void runTurns(boolean ownIsEgress) {
        long idleSince = System.nanoTime() - spinNanos;
        try {
            turnLoop(ownIsEgress, idleSince);
        } finally {
            if (!ownIsEgress) {
                // The ingress thread may have served the TUN too: the egress thread must look at it again (and see
                // it closed, if that is why this thread ends). Flag first, then check: see parkEgress.
                ingressDone = true;
                if (egressParked) {
                    resumeEgress();
                }
            }
        }
    }

    /** The warm-up turns, then the turns until the forwarder stops; see {@link #runTurns(boolean)}. */
    private void turnLoop(boolean ownIsEgress, long idleSince) {
        try {
            if (warmUp) {
                // Each thread its own direction (only it may lock() that one), so the JIT sees both kinds of turn;
                // the counts given to afterTurn stand for turns with work, which a quiet TUN and socket do not have.
                // Both threads together, after the egress thread's warm-up of the data path: turns of one thread
                // alone get compiled for that thread's direction only, and the other's first turn is a trap.
                try {
                    if (!ownIsEgress) {
                        warmedUp.await(WARM_UP_WAIT_NANOS, TimeUnit.NANOSECONDS);
                    }
                    for (int i = 0; i < WARM_UP_TURNS && running; i++) {
                        if (i % 16 == 0) {
                            (ownIsEgress ? egressLock : ingressLock).exerciseBranches();
                        }
                        if (!ownIsEgress && i % 7 == 3) {
                            leanReady = 1 + i % 3; // the socket, the TUN, both: as after a quiet node's waits
                        }
                        long drained = drainBoth(ownIsEgress);
                        int own = (int) (drained >>> 32) | i % 3;
                        int other = (int) drained | (i % 5 == 0 ? EGRESS_TURN : i % 2);
                        // Now and then as if the egress thread were parked, the quiet node's case: a branch the
                        // compiled code has never seen taken is a trap that sends it back to the first tier when the
                        // first live packet takes it (-XX:+LogCompilation: uncommon_trap, unstable_if).
                        afterTurn(ownIsEgress, own, other, idleSince, i % 4 == 1);
                    }
                } catch (IOException | RuntimeException e) {
                    LOG.debug("turn warm-up of {} ended early", tun.name(), e); // the loop below reports what lasts
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } finally {
                    turnsWarmed.countDown();
                }
            }
            if (!ownIsEgress) {
                ingressLive = true;
            }
            while (running) {
                try {
                    long drained = drainBoth(ownIsEgress);
                    long next = afterTurn(ownIsEgress, (int) (drained >>> 32), (int) drained, idleSince, false);
                    if (next != WAIT) {
                        idleSince = next;
                    } else if (running) {
                        awaitWork(ownIsEgress);
                        // Spin only after work: a wake-up that finds nothing (the other thread took it) blocks again.
                        idleSince = System.nanoTime() - spinNanos;
                    }
                } catch (ClosedChannelException e) {
                    break;
                } catch (IOException | RuntimeException e) {
                    if (!running || !tun.isOpen() || !socket.isOpen()) {
                        break;
                    }
                    report(e);
                }
            }
        } catch (Throwable t) {
            if (running) {
                report(t);
            }
        }
    }

    /**
     * The work of one turn of {@link #runTurns}: drain the own direction, then help with the other if it is free.
     * Three methods per turn (this, {@link #afterTurn}, {@link #awaitWork}) rather than one: the JIT compiles each
     * from what it saw before the first real packet (here the synthetic warm-up traffic, the same methods' profiles),
     * and a branch first taken by live traffic then costs it the recompilation of a small method, not of the whole
     * inlined path. (A single method, compiled in the warm-up, was thrown out at a quiet node's first wait and ran
     * at the first tier for thousands of packets: {@code -XX:+PrintCompilation}.)
     *
     * @return the receives or reads of the own direction in the upper 32 bits, of the other in the lower
     */
    private long drainBoth(boolean ownIsEgress) throws IOException {
        if (!ownIsEgress && leanReady != 0) {
            int ready = leanReady;
            leanReady = 0;
            return leanTurn(ready);
        }
        PathLock ownLock = ownIsEgress ? egressLock : ingressLock;
        PathLock otherLock = ownIsEgress ? ingressLock : egressLock;
        int own;
        ownLock.lock();
        try {
            own = ownIsEgress ? egress.drain(EGRESS_TURN) : ingress.drain(INGRESS_TURN);
        } finally {
            ownLock.unlock();
        }
        int other = 0;
        if (otherLock.tryLock()) {
            try {
                other = ownIsEgress ? ingress.drain(INGRESS_TURN) : egress.drain(EGRESS_TURN);
            } finally {
                otherLock.unlock();
            }
        }
        return (long) own << 32 | other;
    }

    /**
     * The turn of the solo thread after a wait that blocked: one receive if the socket was reported ready, then one TUN
     * read, for what the wait reported or what the datagram just written into the TUN brought back (a ping's echo
     * reply or a request's answer is queued there by the time the write returns). The read does not depend on whether
     * the receive found a datagram: a branch the warm-up cannot take (it has no datagrams) would throw the compiled
     * turn out at the first live one. No read that is bound to find nothing: the next wait tells whether
     * more came, at the cost of one {@code poll(2)} that returns at once, and a wait that does not block is followed by
     * the usual draining turns. On the round trip of a ping this saves five system calls and JNA crossings, each a few
     * microseconds on a thread that has just woken up (overlay-bench/README.md).
     *
     * @return as {@link #drainBoth}
     */
    private long leanTurn(int ready) throws IOException {
        int own = 0;
        if ((ready & UdpSocket.SOCKET_READABLE) != 0) {
            ingressLock.lock();
            try {
                own = ingress.drain(1);
            } finally {
                ingressLock.unlock();
            }
        }
        int other = 0;
        if (egressLock.tryLock()) {
            try {
                other = egress.drain(1);
            } finally {
                egressLock.unlock();
            }
        }
        return (long) own << 32 | other;
    }

    /**
     * What follows a turn that did {@code own} and {@code other} units of work: go on at once, spin, or wait.
     *
     * @param idleSince  when the thread last did work, for the spin ({@code System.nanoTime()})
     * @param warmParked the warm-up's turns: as if the egress thread were parked
     * @return the new {@code idleSince}, or {@link #WAIT}: call {@link #awaitWork}
     */
    private long afterTurn(boolean ownIsEgress, int own, int other, long idleSince, boolean warmParked) {
        if (own + other > 0) {
            long now = System.nanoTime();
            boolean parked = egressParked | warmParked; // no branch on egressParked alone: see the warm-up
            if (!ownIsEgress && parked) {
                lastWorkNanos = now; // only the solo wait reads it; parkEgress sets it when the solo mode begins
                if (own == INGRESS_TURN || other == EGRESS_TURN || (own > 1 && other > 0)) {
                    // More is queued than one thread keeps up with, or a stream in (more than one receive) with
                    // replies out, its ACKs, which the egress thread sends while this one goes on: both threads again.
                    resumeEgress();
                }
            }
            // Both drains stopped at an empty queue: block at once rather than probe both again (two system calls
            // that find nothing); poll(2) returns at once if something came meanwhile.
            boolean drained = own < (ownIsEgress ? EGRESS_TURN : INGRESS_TURN)
                    && other < (ownIsEgress ? INGRESS_TURN : EGRESS_TURN);
            if (!drained || spinNanos > 0) {
                return now;
            }
        } else if (spinNanos > 0 && System.nanoTime() - idleSince < spinNanos) {
            Thread.onSpinWait();
            return idleSince;
        }
        return WAIT;
    }

    /** Blocks until the thread's sources may have work (or parks the egress thread: see {@link #parkEgress}). */
    private void awaitWork(boolean ownIsEgress) throws IOException {
        if (ownIsEgress) {
            if (soloTun == null) {
                tun.awaitReadable();
            } else if (!soloTun.awaitReadable(soloAfterMillis) && ingressLive) {
                parkEgress();
            }
        } else if (egressParked) {
            // Timed waits: a JVM thread woken after tens of milliseconds blocked answers 20-30 us later than one
            // that ran a few milliseconds before (overlay-bench/reference/wake-latency), on each host of a round
            // trip. A wakeup() (close, parkEgress) or work returns, and so does a timeout: the loop then takes a turn
            // that finds nothing (a receive and a TUN read), which keeps the data path's code and data warm for the
            // next packet (overlay-bench/README.md), and the wait after it begins with both sources empty. Only for
            // TICK_WINDOW_SECONDS after the last packet: a node without traffic costs nothing.
            long since = System.nanoTime();
            int ready = socket.awaitReadable(soloTun, since - lastWorkNanos < TICK_WINDOW_NANOS ? soloTickMillis : -1);
            if (ready == UdpSocket.TIMED_OUT || System.nanoTime() - since >= LEAN_AFTER_NANOS) {
                leanTurnsLeft = LEAN_TURNS;
            }
            // After a wait that blocked, what it reports is all there is to read (leanTurn).
            if (ready != UdpSocket.TIMED_OUT && leanTurnsLeft > 0) {
                leanTurnsLeft--;
                leanReady = ready & READY_BITS;
            }
        } else {
            socket.awaitReadable();
        }
    }

    /**
     * The TUN stayed quiet for {@link #soloAfterMillis}: parks the egress thread until the ingress thread, which from
     * now on waits on the TUN and the socket together and serves both directions, needs it again (or the forwarder
     * stops). One thread and one wake-up per event while the node is quiet: no hand-over between threads on the
     * latency path of a ping or a request.
     */
    private void parkEgress() {
        lastWorkNanos = System.nanoTime(); // its own last packet may be newer than the ingress thread's
        egressParked = true;
        if (ingressDone) {
            egressParked = false; // nobody would serve the TUN (both flags are volatile: one side sees the other)
            return;
        }
        socket.wakeup(); // the ingress thread may wait on the socket alone: make it wait on both
        while (egressParked && running) {
            LockSupport.park(this);
        }
    }

    /** Ends {@link #parkEgress()}: the ingress thread goes back to waiting on the socket alone. */
    private void resumeEgress() {
        egressParked = false;
        Thread out = egressThread;
        if (out != null) {
            LockSupport.unpark(out);
        }
    }

    @Override
    public String toString() {
        return "Forwarder[" + tun.name() + ", " + encapsulator + ", mtu " + mtu + ", port " + port + ", "
                + (vnetHeader() ? "TUN offloads" : "plain TUN") + ", " + (socket.groEnabled() ? "GRO" : "no GRO")
                + ", " + (socket.gsoSupported() ? "GSO" : "no GSO") + ", " + peers.get().size() + " peers]";
    }

    /**
     * Builds a {@link Forwarder}. Defaults: the flannel udp encapsulator and its port, the TUN's MTU, strict ingress
     * admission, a rate-limited slf4j warning per error, daemon threads named {@code overlay4j-egress-<tun>} and
     * {@code overlay4j-ingress-<tun>}, no peers, and neither the TUN nor the socket owned.
     */
    public static final class Builder {
        private TunDevice tun;
        private UdpSocket socket;
        private Encapsulator encapsulator = FlannelUdpEncapsulator.INSTANCE;
        private int port = -1;
        private int mtu = -1;
        private Ipv4Prefix ownSubnet;
        private Ipv4Prefix network;
        private boolean admitAnySenderAddress;
        private Consumer<Throwable> errorHandler;
        private ThreadFactory threadFactory;
        private boolean ownsTun;
        private boolean ownsSocket;
        private PeerTable peers;
        private Duration spin;
        private Boolean warmUp;

        private Builder() {
        }

        /** The TUN device to read from and write to (with or without virtio headers). Required. */
        public Builder tun(TunDevice tun) {
            this.tun = requireNonNull(tun, "tun");
            return this;
        }

        /**
         * An open UDP socket bound to the port peers send to; the caller opens it (in its namespace, with GRO and
         * buffer sizes as wanted). Required.
         */
        public Builder socket(UdpSocket socket) {
            this.socket = requireNonNull(socket, "socket");
            return this;
        }

        /** The encapsulation; default {@link FlannelUdpEncapsulator#INSTANCE}. */
        public Builder encapsulator(Encapsulator encapsulator) {
            this.encapsulator = requireNonNull(encapsulator, "encapsulator");
            return this;
        }

        /**
         * The UDP port peers listen on, used for the peers made by {@link Forwarder#peersChanged} and
         * {@link Forwarder#resetPeers}; default the encapsulator's (8285 for flannel udp, 8472 for VXLAN).
         */
        public Builder port(int port) {
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("UDP port must be 1..65535: " + port);
            }
            this.port = port;
            return this;
        }

        /** The largest inner packet forwarded in either direction; default the TUN's MTU. */
        public Builder mtu(int mtu) {
            if (mtu < 68 || mtu > 65535) {
                throw new IllegalArgumentException("MTU must be 68..65535: " + mtu);
            }
            this.mtu = mtu;
            return this;
        }

        /**
         * This node's subnet (its lease): received packets are admitted only for destinations in it, and its network
         * address (the TUN's address) is the source of ICMP net-unreachable replies. Required.
         */
        public Builder ownSubnet(Ipv4Prefix ownSubnet) {
            this.ownSubnet = requireNonNull(ownSubnet, "ownSubnet");
            return this;
        }

        /**
         * The overlay network; optional. Only classifies refused inner sources: outside it
         * {@link io.overlay4j.DropReason#FOREIGN_SOURCE}, inside it {@link io.overlay4j.DropReason#SPOOFED_SOURCE}.
         */
        public Builder network(Ipv4Prefix network) {
            this.network = network;
            return this;
        }

        /**
         * Relaxes ingress admission for peers behind NAT, whose datagrams arrive from an address other than the
         * {@code PublicIP} of their lease: the sender's address and port are then not checked, but the inner source
         * must still lie in some current lease's subnet and the inner destination in this node's subnet. Anyone who
         * can reach the port can then send with any leased source address; use it only where the underlay is trusted.
         * Default false.
         */
        public Builder admitAnySenderAddress(boolean admitAnySenderAddress) {
            this.admitAnySenderAddress = admitAnySenderAddress;
            return this;
        }

        /** Receives unexpected errors of the loops; must not block. Default: a rate-limited slf4j warning. */
        public Builder errorHandler(Consumer<Throwable> errorHandler) {
            this.errorHandler = requireNonNull(errorHandler, "errorHandler");
            return this;
        }

        /**
         * Makes the two threads (egress first), e.g. to name them, start them in a network namespace or as daemons;
         * the forwarder appends {@code -egress-<tun>} and {@code -ingress-<tun>} to the names the factory gives.
         * Default: daemon threads named {@code overlay4j-egress-<tun>} and {@code overlay4j-ingress-<tun>}.
         */
        public Builder threadFactory(ThreadFactory threadFactory) {
            this.threadFactory = requireNonNull(threadFactory, "threadFactory");
            return this;
        }

        /** Whether {@link Forwarder#close()} closes the TUN device; default false. */
        public Builder ownsTun(boolean ownsTun) {
            this.ownsTun = ownsTun;
            return this;
        }

        /** Whether {@link Forwarder#close()} closes the socket; default false. */
        public Builder ownsSocket(boolean ownsSocket) {
            this.ownsSocket = ownsSocket;
            return this;
        }

        /**
         * How long each forwarder thread keeps polling both directions without blocking after its last packet, before
         * it waits in {@code poll(2)}: trades CPU right after traffic for fewer thread wake-ups (latency) when packets
         * follow each other closely. Bounded: an idle forwarder blocks and uses no CPU. Only with a
         * {@linkplain TunDevice#pollable() pollable} TUN. Default: the system property {@value #SPIN_MICROS_PROPERTY}
         * (microseconds), else 0 (no spinning); at most 1 s.
         */
        public Builder spin(Duration spin) {
            requireNonNull(spin, "spin");
            if (spin.isNegative() || spin.compareTo(Duration.ofSeconds(1)) > 0) {
                throw new IllegalArgumentException("spin must be 0..1 s: " + spin);
            }
            this.spin = spin;
            return this;
        }

        /**
         * Whether the egress thread first runs the forwarder's code on synthetic traffic over loopback (a socket pair
         * as TUN, a UDP socket on 127.0.0.1 sending to itself; nothing reaches the node's devices or routes), so
         * that the JIT has compiled the per-packet path before the first real packet: without it the first thousands
         * of packets run interpreted (a quiet node's pings take several times longer) and the compiler competes with
         * the first transfers for the CPU. Once per configuration and JVM, at most 1.5 s, skipped quietly where
         * loopback is unusable. Then, on a pollable TUN, each thread runs its loop's body some thousand times
         * without waiting (about 20 ms; it handles whatever real packets are queued). Default true, unless the
         * system property {@value #WARM_UP_PROPERTY} is {@code false}.
         */
        public Builder warmUp(boolean warmUp) {
            this.warmUp = warmUp;
            return this;
        }

        /** The initial peers, a table built for the same encapsulator; default none. */
        public Builder peers(PeerTable peers) {
            this.peers = requireNonNull(peers, "peers");
            return this;
        }

        /**
         * Checks the options and builds the forwarder (not started); allocates its buffers.
         *
         * @throws IllegalArgumentException if the TUN, socket or own subnet is missing, the socket is closed, or the
         *                                  peers were built for another encapsulator
         */
        public Forwarder build() {
            if (tun == null || socket == null || ownSubnet == null) {
                throw new IllegalArgumentException("a forwarder needs a tun, a socket and its own subnet");
            }
            if (!socket.isOpen()) {
                throw new IllegalArgumentException("the socket is closed");
            }
            if (mtu < 0) {
                mtu = tun.mtu();
            }
            if (port < 0) {
                port = encapsulator.defaultPort();
            }
            return new Forwarder(this);
        }
    }
}
