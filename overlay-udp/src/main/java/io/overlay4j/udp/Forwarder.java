package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseEvent;
import io.overlay4j.TrafficStats;
import io.overlay4j.TunDevice;
import io.overlay4j.udp.internal.IcmpUnreachable;
import io.overlay4j.udp.internal.Ipv4Header;
import io.overlay4j.udp.internal.RateLimitedErrorLogger;
import io.overlay4j.udp.internal.TrafficCounters;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The userspace data plane between a TUN device and a UDP socket: one thread moves packets TUN → encapsulate → peer
 * lookup → UDP (egress), another UDP → decapsulate → source check → TUN (ingress). Both use blocking I/O and one
 * pooled direct buffer each, acquired when the thread starts and released exactly once when it ends; nothing is
 * allocated, boxed or logged per packet. Every dropped packet is counted under one {@link DropReason}; unexpected
 * exceptions go to the error handler and the loop goes on.
 *
 * <p>A destination no peer owns is answered with an ICMP net-unreachable written back into the TUN (as flannel does),
 * if {@link Builder#ownSubnet own subnet} is set, and counted as {@link DropReason#NO_ROUTE}. The ICMP reply is
 * written from the egress thread while the ingress thread writes packets, so the TUN device must accept writes from
 * two threads (the kernel's does: each write is one system call).
 *
 * <p>Ownership: the forwarder uses, but does not own, the TUN device and the channel unless told so with
 * {@link Builder#ownsTun} and {@link Builder#ownsChannel}; {@link #close()} then closes them. See {@link #close()} for
 * how the threads are stopped in either case.
 *
 * <p>Peers are an immutable {@link PeerTable} swapped with {@link #peers(PeerTable)}: one volatile write; the egress
 * thread reads the field once per packet.
 */
public final class Forwarder implements DataPlane {
    /** The buffer size per thread: any UDP datagram fits, so datagrams beyond the MTU are seen whole and counted. */
    static final int BUFFER_CAPACITY = 65536;
    private static final Logger LOG = LoggerFactory.getLogger(Forwarder.class);
    private static final long JOIN_MILLIS = 5000;
    private static final int NEW = 0;
    private static final int STARTED = 1;
    private static final int CLOSED = 2;

    private final TunDevice tun;
    private final DatagramChannel channel;
    private final Encapsulator encapsulator;
    private final int port;
    private final int mtu;
    private final int headroom;
    private final int capacity;
    private final boolean icmpEnabled;
    private final int icmpSource;
    private final IngressCheck ingressCheck;
    private final ByteBufAllocator allocator;
    private final Consumer<Throwable> errorHandler;
    private final ThreadFactory threadFactory;
    private final boolean ownsTun;
    private final boolean ownsChannel;
    private final TrafficCounters egress = new TrafficCounters();
    private final TrafficCounters ingress = new TrafficCounters();
    private final AtomicInteger state = new AtomicInteger(NEW);

    private volatile PeerTable peers = PeerTable.empty();
    private volatile boolean running;
    private volatile Thread egressThread;
    private volatile Thread ingressThread;

    private Forwarder(Builder b) {
        this.tun = b.tun;
        this.channel = b.channel;
        this.encapsulator = b.encapsulator;
        this.port = b.port;
        this.mtu = b.mtu;
        this.headroom = b.encapsulator.headroom();
        this.capacity = Math.max(BUFFER_CAPACITY, b.mtu + headroom);
        this.icmpEnabled = b.ownSubnet != null;
        this.icmpSource = b.ownSubnet == null ? 0 : b.ownSubnet.networkInt();
        this.ingressCheck = new IngressCheck(b.encapsulator, b.mtu, b.network, b.sourceCheck);
        this.allocator = b.allocator;
        this.errorHandler = b.errorHandler != null ? b.errorHandler
                : new RateLimitedErrorLogger(LOG, "forwarder " + b.tun.name(), 1, TimeUnit.SECONDS);
        this.threadFactory = b.threadFactory;
        this.ownsTun = b.ownsTun;
        this.ownsChannel = b.ownsChannel;
        if (b.peers != null) {
            this.peers = b.peers;
        }
    }

    /** A builder; {@link Builder#tun} and {@link Builder#channel} are required. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Starts the egress and the ingress thread. They are created from the calling thread, so they inherit its network
     * namespace. Call once.
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
    }

    private Thread newThread(Runnable r, String name) {
        if (threadFactory != null) {
            return threadFactory.newThread(r);
        }
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    /** Installs a new peer table; the egress thread uses it from its next packet on. */
    public void peers(PeerTable table) {
        this.peers = requireNonNull(table, "table");
    }

    /** The current peer table. */
    public PeerTable peers() {
        return peers;
    }

    /**
     * Applies lease events to a copy of the current table, with peers at {@link #port()}, and installs it. Call from
     * one thread at a time.
     */
    public void peersChanged(List<LeaseEvent> events) {
        peers(peers.apply(events, port));
    }

    /** Replaces all peers with these leases, at {@link #port()}. */
    public void resetPeers(Collection<Lease> leases) {
        peers(PeerTable.of(leases, port));
    }

    /** The UDP port peers listen on. */
    public int port() {
        return port;
    }

    /** The largest inner packet forwarded (the TUN MTU). */
    public int mtu() {
        return mtu;
    }

    /** A snapshot of the counters of both directions (each counter exact, not all taken at one instant). */
    public TrafficStats stats() {
        return TrafficCounters.snapshot(egress, ingress);
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
     *   <li>The ingress thread is woken: an owned channel is closed; otherwise an empty datagram is sent to the
     *   channel's own address, which the stopping loop discards, and the channel stays open for its owner.</li>
     *   <li>The egress thread is woken by closing an owned TUN device. A TUN device the forwarder does not own cannot
     *   be woken without closing it (interrupting a thread blocked in a JDK channel would close the channel), so the
     *   egress thread ends when its owner closes the device or the next packet arrives; use
     *   {@link #awaitTermination} after closing the device to wait for it.</li>
     *   <li>Joins the threads it woke (up to 5 seconds each). Each thread releases its buffer as it ends.</li>
     * </ol>
     */
    @Override
    public void close() {
        int previous = state.getAndSet(CLOSED);
        if (previous == CLOSED) {
            return;
        }
        running = false;
        if (ownsChannel) {
            try {
                channel.close();
            } catch (IOException e) {
                LOG.debug("closing the channel failed", e);
            }
        } else if (previous == STARTED) {
            wakeIngress();
        }
        if (ownsTun) {
            tun.close();
        }
        if (previous != STARTED) {
            return;
        }
        join(ingressThread, JOIN_MILLIS);
        if (ownsTun) {
            join(egressThread, JOIN_MILLIS);
        }
    }

    /**
     * Waits for both threads to end after {@link #close()}.
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

    private void wakeIngress() {
        try {
            SocketAddress local = channel.getLocalAddress();
            if (!(local instanceof InetSocketAddress)) {
                return;
            }
            InetSocketAddress bound = (InetSocketAddress) local;
            InetAddress address = bound.getAddress();
            if (address == null || address.isAnyLocalAddress()) {
                address = InetAddress.getLoopbackAddress();
            }
            channel.send(ByteBuffer.allocate(0), new InetSocketAddress(address, bound.getPort()));
        } catch (IOException e) {
            LOG.debug("could not wake the ingress thread of {}", tun.name(), e);
        }
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
        ByteBuf packetBuf = null;
        ByteBuf icmpBuf = null;
        try {
            packetBuf = allocator.directBuffer(capacity, capacity);
            icmpBuf = allocator.directBuffer(IcmpUnreachable.MAX_LENGTH, IcmpUnreachable.MAX_LENGTH);
            ByteBuffer packet = packetBuf.internalNioBuffer(0, capacity);
            ByteBuffer icmp = icmpBuf.internalNioBuffer(0, IcmpUnreachable.MAX_LENGTH);
            egressLoop(packet, packet.position(), icmp, icmp.position());
        } catch (Throwable t) {
            if (running) {
                report(t);
            }
        } finally {
            release(packetBuf);
            release(icmpBuf);
        }
    }

    private void egressLoop(ByteBuffer packet, int base, ByteBuffer icmp, int icmpBase) {
        final int innerStart = base + headroom;
        final int end = base + capacity;
        while (running) {
            try {
                packet.limit(end).position(innerStart);
                int n = tun.read(packet);
                packet.limit(innerStart + n).position(innerStart);
                DropReason reason = encapsulator.encapsulate(packet, mtu);
                if (reason != null) {
                    egress.drop(reason);
                    continue;
                }
                int innerLength = packet.limit() - innerStart;
                Peer peer = peers.lookup(Ipv4Header.destination(packet, innerStart));
                if (peer == null) {
                    egress.drop(DropReason.NO_ROUTE);
                    if (icmpEnabled) {
                        replyUnreachable(packet, innerStart, innerLength, icmp, icmpBase);
                    }
                    continue;
                }
                sendTo(packet, peer, innerLength);
            } catch (ClosedChannelException e) {
                break;
            } catch (Exception e) {
                if (!running || !tun.isOpen()) {
                    break;
                }
                report(e);
            }
        }
    }

    private void sendTo(ByteBuffer packet, Peer peer, int innerLength) throws ClosedChannelException {
        try {
            if (channel.send(packet, peer.endpoint()) == 0) {
                egress.drop(DropReason.SEND_FAILED);
                return;
            }
            egress.packet(innerLength);
        } catch (ClosedChannelException e) {
            throw e;
        } catch (IOException e) {
            // Report first: whoever sees the drop counted (release/acquire) also sees the report.
            report(e);
            egress.drop(DropReason.SEND_FAILED);
        }
    }

    private void replyUnreachable(ByteBuffer packet, int innerStart, int innerLength, ByteBuffer icmp, int icmpBase)
            throws ClosedChannelException {
        // Quote the header as it arrived: flannel looks up before it decrements the TTL; so does a kernel router.
        Ipv4Header.incrementTtl(packet, innerStart);
        int length = IcmpUnreachable.write(packet, innerStart, innerLength, icmp, icmpBase, icmpSource);
        if (length == 0) {
            return;
        }
        icmp.limit(icmpBase + length).position(icmpBase);
        try {
            tun.write(icmp);
            egress.icmpSent();
        } catch (ClosedChannelException e) {
            throw e;
        } catch (IOException e) {
            report(e);
        }
    }

    private void runIngress() {
        ByteBuf packetBuf = null;
        try {
            packetBuf = allocator.directBuffer(capacity, capacity);
            ByteBuffer packet = packetBuf.internalNioBuffer(0, capacity);
            ingressLoop(packet, packet.position());
        } catch (Throwable t) {
            if (running) {
                report(t);
            }
        } finally {
            release(packetBuf);
        }
    }

    private void ingressLoop(ByteBuffer packet, int base) {
        final int end = base + capacity;
        while (running) {
            try {
                packet.limit(end).position(base);
                SocketAddress sender = channel.receive(packet);
                if (!running) {
                    break;
                }
                if (sender == null) {
                    continue;
                }
                packet.limit(packet.position()).position(base);
                DropReason reason = ingressCheck.check(packet);
                if (reason != null) {
                    ingress.drop(reason);
                    continue;
                }
                int length = packet.remaining();
                try {
                    tun.write(packet);
                } catch (ClosedChannelException e) {
                    throw e;
                } catch (IOException e) {
                    report(e);
                    ingress.drop(DropReason.TUN_WRITE_FAILED);
                    continue;
                }
                ingress.packet(length);
            } catch (ClosedChannelException e) {
                break;
            } catch (Exception e) {
                if (!running || !channel.isOpen()) {
                    break;
                }
                report(e);
            }
        }
    }

    private static void release(ByteBuf buf) {
        if (buf != null) {
            buf.release();
        }
    }

    @Override
    public String toString() {
        return "Forwarder[" + tun.name() + ", mtu " + mtu + ", port " + port + ", " + peers.size() + " peers]";
    }

    /**
     * Builds a {@link Forwarder}. Defaults: the flannel udp encapsulator, its port (8285), the TUN's MTU, no ICMP
     * replies (set {@link #ownSubnet}), no source check (set {@link #network}), {@link PooledByteBufAllocator#DEFAULT},
     * a rate-limited slf4j warning per error, daemon threads named {@code overlay4j-egress-<tun>} and
     * {@code overlay4j-ingress-<tun>}, and neither the TUN nor the channel owned.
     */
    public static final class Builder {
        private TunDevice tun;
        private DatagramChannel channel;
        private Encapsulator encapsulator = FlannelUdpEncapsulator.INSTANCE;
        private int port = -1;
        private int mtu = -1;
        private Ipv4Prefix ownSubnet;
        private Ipv4Prefix network;
        private boolean sourceCheck = true;
        private ByteBufAllocator allocator = PooledByteBufAllocator.DEFAULT;
        private Consumer<Throwable> errorHandler;
        private ThreadFactory threadFactory;
        private boolean ownsTun;
        private boolean ownsChannel;
        private PeerTable peers;

        private Builder() {
        }

        /** The TUN device to read from and write to. Required. */
        public Builder tun(TunDevice tun) {
            this.tun = requireNonNull(tun, "tun");
            return this;
        }

        /** An open, bound, blocking datagram channel; the caller creates it so it lands in its namespace. Required. */
        public Builder channel(DatagramChannel channel) {
            this.channel = requireNonNull(channel, "channel");
            return this;
        }

        /** The encapsulation; default {@link FlannelUdpEncapsulator#INSTANCE}. */
        public Builder encapsulator(Encapsulator encapsulator) {
            this.encapsulator = requireNonNull(encapsulator, "encapsulator");
            return this;
        }

        /** The UDP port peers listen on, used by {@link #peersChanged} and {@link #resetPeers}. */
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

        /** The node's own subnet: its network address is the source of ICMP net-unreachable replies. */
        public Builder ownSubnet(Ipv4Prefix ownSubnet) {
            this.ownSubnet = ownSubnet;
            return this;
        }

        /**
         * The overlay network: received packets whose inner source lies outside it are dropped as
         * {@link DropReason#FOREIGN_SOURCE} (unless {@link #sourceCheck(boolean) sourceCheck(false)}).
         */
        public Builder network(Ipv4Prefix network) {
            this.network = network;
            return this;
        }

        /** Whether to check inner sources against {@link #network}; default true (flannel checks nothing). */
        public Builder sourceCheck(boolean sourceCheck) {
            this.sourceCheck = sourceCheck;
            return this;
        }

        /** Where the per-thread direct buffers come from; default {@link PooledByteBufAllocator#DEFAULT}. */
        public Builder allocator(ByteBufAllocator allocator) {
            this.allocator = requireNonNull(allocator, "allocator");
            return this;
        }

        /** Receives unexpected errors of the loops; must not block. Default: a rate-limited slf4j warning. */
        public Builder errorHandler(Consumer<Throwable> errorHandler) {
            this.errorHandler = requireNonNull(errorHandler, "errorHandler");
            return this;
        }

        /** Makes the two threads; default plain daemon threads named after the direction and the TUN. */
        public Builder threadFactory(ThreadFactory threadFactory) {
            this.threadFactory = requireNonNull(threadFactory, "threadFactory");
            return this;
        }

        /** Whether {@link Forwarder#close()} closes the TUN device; default false. */
        public Builder ownsTun(boolean ownsTun) {
            this.ownsTun = ownsTun;
            return this;
        }

        /** Whether {@link Forwarder#close()} closes the channel; default false. */
        public Builder ownsChannel(boolean ownsChannel) {
            this.ownsChannel = ownsChannel;
            return this;
        }

        /** The initial peers; default none. */
        public Builder peers(PeerTable peers) {
            this.peers = requireNonNull(peers, "peers");
            return this;
        }

        /**
         * Checks the options and builds the forwarder (not started).
         *
         * @throws IllegalArgumentException if the TUN or channel is missing, or the channel is closed, unbound or not
         *                                  blocking
         */
        public Forwarder build() {
            if (tun == null || channel == null) {
                throw new IllegalArgumentException("a forwarder needs a tun and a channel");
            }
            if (!channel.isOpen() || !channel.isBlocking()) {
                throw new IllegalArgumentException("the channel must be open and in blocking mode");
            }
            try {
                if (channel.getLocalAddress() == null) {
                    throw new IllegalArgumentException("the channel must be bound");
                }
            } catch (IOException e) {
                throw new IllegalArgumentException("the channel's address cannot be read", e);
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
