package io.overlay4j.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.Peer;
import io.overlay4j.udp.PeerTable;
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
 *   <li>{@link #egress}: {@code encapsulate} (validation, TTL decrement with RFC 1624 checksum update) plus the
 *   {@link PeerTable#lookup} of the inner destination in a table of 1,000 peers (destinations cycle over 4,096
 *   addresses of random peers), i.e. the forwarder's egress work between the TUN read and the UDP send;</li>
 *   <li>{@link #ingress}: {@code decapsulate} plus the inner-source check against the overlay network, i.e. the
 *   forwarder's ingress work between the UDP receive and the TUN write (ingress does no peer lookup).</li>
 * </ul>
 * Before each operation the TTL, protocol and checksum bytes (one 32-bit word at offset 8) and the position and limit
 * are restored, so the TTL never expires and every operation sees the same packet; that restore (a few ns) is part of
 * the measurement. The destination address is rewritten each operation too (one 32-bit store), which does not change
 * the header checksum's validity because nobody verifies it here (flannel's proxy does not either).
 *
 * <p>{@code encapsulator} names an implementation; add VXLAN or others to {@link #encapsulator(String)}.
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
    @Param({"flannel-udp"})
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

    /** Maps an {@code encapsulator} parameter to the implementation. */
    static Encapsulator encapsulator(String name) {
        if ("flannel-udp".equals(name)) {
            return FlannelUdpEncapsulator.INSTANCE;
        }
        throw new IllegalArgumentException("unknown encapsulator: " + name);
    }

    /** Builds the peer table and writes the packet into a pooled direct buffer. */
    @Setup(Level.Trial)
    public void setUp() {
        encap = encapsulator(encapsulator);
        peers = Fixtures.peerTable(PEERS, Fixtures.UNDERLAY_PEER, FlannelUdpEncapsulator.DEFAULT_PORT);
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
        reset();
        if (encap.encapsulate(packet, MTU) != null || peers.lookup(Ipv4Header.destination(packet, base)) == null) {
            throw new IllegalStateException("the benchmark packet is dropped");
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

    /** Egress: encapsulate and look the destination up; returns the peer (null would be NO_ROUTE). */
    @Benchmark
    public Peer egress(Blackhole bh) {
        reset();
        Ipv4Header.putIntBigEndian(packet, base + Ipv4Header.DESTINATION_OFFSET,
                destinations[next++ & (Fixtures.DESTINATIONS - 1)]);
        DropReason reason = encap.encapsulate(packet, MTU);
        if (reason != null) {
            bh.consume(reason);
            return null;
        }
        return peers.lookup(Ipv4Header.destination(packet, base));
    }

    /** Ingress: decapsulate and check the inner source lies in the overlay network; returns whether it passes. */
    @Benchmark
    public boolean ingress(Blackhole bh) {
        reset();
        DropReason reason = encap.decapsulate(packet, MTU);
        if (reason != null) {
            bh.consume(reason);
            return false;
        }
        return (Ipv4Header.source(packet, packet.position()) & networkMask) == networkAddress;
    }
}
