package io.overlay4j.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.Peer;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.VxlanEncapsulator;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The per-packet work of an {@link Encapsulator} on one IPv4/UDP packet of 64, 512 or 1400 bytes, in place on a pooled
 * direct netty buffer ({@code PooledByteBufAllocator.DEFAULT.directBuffer}, seen through {@code internalNioBuffer})
 * as the forwarder holds it:
 * <ul>
 *   <li>{@link #egress}: the forwarder's egress order between the TUN read and the UDP send: IPv4 validation, the
 *   {@link PeerTable#lookup} of the inner destination in a table of 1,000 peers (destinations cycle over 4,096
 *   addresses of random peers), {@code encapsulate} with the peer's context (flannel udp: TTL decrement with RFC
 *   1624 checksum update; VXLAN: the peer's 22 header bytes written in front);</li>
 *   <li>{@link #ingress}: {@code decapsulate} plus the inner IPv4 validation and the admission's source and
 *   destination checks (sender and source against the peer table's address index), i.e. the forwarder's ingress
 *   work between the UDP receive and the TUN write.</li>
 * </ul>
 * Before each operation the TTL, protocol and checksum bytes (one 32-bit word at offset 8) and the position and limit
 * are restored, so the TTL never expires and every operation sees the same packet; that restore (a few ns) is part of
 * the measurement. The destination address is rewritten each operation too (one 32-bit store), which does not change
 * the header checksum's validity because nobody verifies it here (flannel's proxy does not either).
 *
 * <p>{@code encapsulator} names an implementation ({@code flannel-udp}, {@code vxlan}); add others to
 * {@link #encapsulator(String)}.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Thread)
public class EncapDecapBenchmark {
    private static final int MTU = 1472;
    private static final int CAPACITY = 2048;
    private static final int PEERS = 1000;

    /** The encapsulation under test. */
    @Param({"flannel-udp", "vxlan"})
    public String encapsulator;

    /** Inner packet length in bytes, IPv4 header included. */
    @Param({"64", "512", "1400"})
    public int size;

    private ByteBuf buf;
    private ByteBuffer packet;
    private Encapsulator encap;
    private PeerTable peers;
    private int[] destinations;
    private int next;
    private int base;
    private int end;
    private int ttlWord;
    private int networkAddress;
    private int networkMask;
    private int source;
    private int own;
    private int ownMask;
    private int sender;
    private int headerWord;

    /** Maps an {@code encapsulator} parameter to the implementation. */
    static Encapsulator encapsulator(String name) {
        if ("flannel-udp".equals(name)) {
            return FlannelUdpEncapsulator.INSTANCE;
        }
        if ("vxlan".equals(name)) {
            return VxlanEncapsulator.of(1, "02:00:00:00:ff:ff");
        }
        throw new IllegalArgumentException("unknown encapsulator: " + name);
    }

    /** Builds the peer table and writes the packet into a pooled direct buffer. */
    @Setup(Level.Trial)
    public void setUp() {
        encap = encapsulator(encapsulator);
        peers = Fixtures.peerTable(PEERS, Fixtures.UNDERLAY_PEER, encap.defaultPort(), encap, true);
        destinations = Fixtures.destinations(PEERS, true, 42);
        networkAddress = Fixtures.NETWORK.networkInt();
        networkMask = Fixtures.NETWORK.maskInt();
        buf = PooledByteBufAllocator.DEFAULT.directBuffer(CAPACITY, CAPACITY);
        packet = buf.internalNioBuffer(0, CAPACITY);
        base = packet.position() + encap.headroom();
        end = base + size;
        byte[] bytes = Fixtures.ipv4(Fixtures.subnetOf(PEERS) | 2, destinations[0], size);
        packet.put(base, bytes);
        ttlWord = packet.getInt(base + Ipv4Header.TTL_OFFSET);
        source = Fixtures.subnetOf(PEERS / 2) | 2;
        own = Fixtures.subnetOf(PEERS / 3);
        ownMask = 0xffffff00;
        sender = peers.senderIndex(Fixtures.UNDERLAY_PEER + PEERS / 2, encap.defaultPort(),
                encap.fixedSourcePort());
        reset();
        if (egress(null) == null) {
            throw new IllegalStateException("the benchmark packet is dropped on egress");
        }
        if (encap instanceof VxlanEncapsulator) {
            // What a peer sends us: our own VtepMAC as the destination.
            VxlanEncapsulator vx = (VxlanEncapsulator) encap;
            Object toUs = vx.peerContext(new io.overlay4j.Lease(io.overlay4j.Ipv4Prefix.of(own, 24),
                    new io.overlay4j.LeaseAttributes(io.overlay4j.Ipv4Prefix.fromInt(Fixtures.UNDERLAY_PEER), null,
                            "vxlan", vx.backendData()), null));
            reset();
            vx.encapsulate(packet, toUs, MTU);
        }
        headerWord = encap.headroom() == 0 ? 0 : packet.getInt(base - encap.headroom());
        if (!ingress(null)) {
            throw new IllegalStateException("the benchmark packet is dropped on ingress");
        }
    }

    /** Releases the buffer. */
    @TearDown(Level.Trial)
    public void tearDown() {
        buf.release();
    }

    private void reset() {
        packet.limit(end).position(base);
        packet.putInt(base + Ipv4Header.TTL_OFFSET, ttlWord);
    }

    /** Egress: validate, look the destination up, encapsulate; returns the peer (null for a drop). */
    @Benchmark
    public Peer egress(Blackhole bh) {
        reset();
        Ipv4Header.putIntBigEndian(packet, base + Ipv4Header.DESTINATION_OFFSET,
                destinations[next++ & (Fixtures.DESTINATIONS - 1)]);
        DropReason reason = Ipv4Header.validate(packet, MTU);
        if (reason != null) {
            consume(bh, reason);
            return null;
        }
        Peer peer = peers.lookup(Ipv4Header.destination(packet, base));
        if (peer == null) {
            return null;
        }
        reason = encap.encapsulate(packet, peer.context(), MTU);
        if (reason != null) {
            consume(bh, reason);
            return null;
        }
        return peer;
    }

    /**
     * Ingress: decapsulate, validate, and admit (the inner source in the sender's subnet, the destination in ours);
     * returns whether it passes.
     */
    @Benchmark
    public boolean ingress(Blackhole bh) {
        packet.limit(end).position(base - encap.headroom());
        packet.putInt(base + Ipv4Header.TTL_OFFSET, ttlWord);
        Ipv4Header.putIntBigEndian(packet, base + Ipv4Header.SOURCE_OFFSET, source);
        Ipv4Header.putIntBigEndian(packet, base + Ipv4Header.DESTINATION_OFFSET, own | 9);
        if (encap.headroom() != 0) {
            packet.putInt(base - encap.headroom(), headerWord);
        }
        DropReason reason = encap.decapsulate(packet, MTU);
        if (reason == null) {
            reason = Ipv4Header.validate(packet, MTU);
        }
        if (reason != null) {
            consume(bh, reason);
            return false;
        }
        int at = packet.position();
        int src = Ipv4Header.source(packet, at);
        return sender >= 0 && peers.senderOwnsSource(sender, src)
                && (Ipv4Header.destination(packet, at) & ownMask) == own
                && (src & networkMask) == networkAddress;
    }

    private static void consume(Blackhole bh, Object o) {
        if (bh != null) {
            bh.consume(o);
        }
    }
}
