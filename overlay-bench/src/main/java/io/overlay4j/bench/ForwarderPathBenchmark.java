package io.overlay4j.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.Peer;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.internal.Ipv4Header;
import io.overlay4j.udp.internal.TrafficCounters;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
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

/**
 * One packet through the userspace egress path, on the benchmark thread, without a kernel TUN device.
 *
 * <p>{@code io.overlay4j.udp.Forwarder} runs its loops on its own threads and exposes no per-packet hook, so this
 * benchmark <em>reproduces the exact step sequence of {@code Forwarder.egressLoop}</em> on the same kind of buffer
 * (one pooled direct 64 KiB buffer, acquired once, seen through {@code internalNioBuffer}): reset position and limit,
 * {@code TunDevice.read} from an {@link InMemoryTunDevice} in its allocation-free {@code injectRepeated} mode (a copy
 * of the packet into the buffer, like the kernel's), {@code encapsulate} (validation, TTL decrement, RFC 1624
 * checksum), one volatile read of the peer table and {@link PeerTable#lookup} (1,000 peers), the send, and the
 * egress counter update ({@link TrafficCounters#packet}). The ICMP-unreachable branch is not taken: every packet has
 * a route. If {@code egressLoop} changes, change {@link #egress} with it.
 *
 * <p>The send goes to {@code sink}:
 * <ul>
 *   <li>{@code memory}: an in-memory datagram sink that consumes the payload ({@code position = limit}) and keeps the
 *   target, the way {@code DatagramChannel.send} treats its arguments; no system call at all, so this is the pure
 *   userspace cost per packet;</li>
 *   <li>{@code loopback}: the real JDK {@code DatagramChannel.send} (blocking, bound to 127.0.0.1) to a channel on
 *   127.0.0.1 that nobody reads: <strong>one {@code sendto} system call per packet is included</strong>. Once the
 *   receiver's buffer is full the kernel drops the datagrams (Linux does not fail a UDP send for that), so the
 *   receive side's socket-queue work is only partly counted.</li>
 * </ul>
 * Every packet has the same destination, so the lookup's branches are predictable here; see
 * {@link PeerLookupBenchmark} for lookups over varied destinations.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Thread)
public class ForwarderPathBenchmark {
    private static final int MTU = 1472;
    /** {@code Forwarder.BUFFER_CAPACITY} (package-private there). */
    private static final int CAPACITY = 65536;
    private static final int PEERS = 1000;

    /** Inner packet length in bytes. */
    @Param({"64", "512", "1400"})
    public int size;

    /** Where the encapsulated datagram goes: {@code memory} (no syscall) or {@code loopback} (a real sendto). */
    @Param({"memory", "loopback"})
    public String sink;

    private final Encapsulator encapsulator = FlannelUdpEncapsulator.INSTANCE;
    private final TrafficCounters egress = new TrafficCounters();
    private final MemorySink memory = new MemorySink();
    private volatile PeerTable peers;
    private boolean toMemory;
    private InMemoryTunDevice tun;
    private DatagramChannel channel;
    private DatagramChannel receiver;
    private ByteBuf packetBuf;
    private ByteBuffer packet;
    private int innerStart;
    private int end;

    /**
     * An in-memory stand-in for {@code DatagramChannel.send}: consumes the remaining bytes and remembers the target.
     */
    static final class MemorySink {
        long bytes;
        InetSocketAddress lastTarget;

        int send(ByteBuffer src, InetSocketAddress target) {
            int n = src.remaining();
            src.position(src.limit());
            bytes += n;
            lastTarget = target;
            return n;
        }
    }

    /** Opens the in-memory TUN, the channels and the buffer, and builds the peers (all at the loopback receiver). */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        toMemory = "memory".equals(sink);
        if (!toMemory && !"loopback".equals(sink)) {
            throw new IllegalArgumentException("unknown sink: " + sink);
        }
        receiver = DatagramChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress("127.0.0.1", 0));
        channel = DatagramChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress("127.0.0.1", 0));
        int port = ((InetSocketAddress) receiver.getLocalAddress()).getPort();
        peers = Fixtures.peerTable(PEERS, 0x7f000001, port);
        tun = new InMemoryTunDevice("bench0", MTU);
        int dst = Fixtures.subnetOf(PEERS / 2) | 9;
        tun.injectRepeated(Fixtures.ipv4(Fixtures.subnetOf(PEERS) | 2, dst, size), Long.MAX_VALUE);
        packetBuf = PooledByteBufAllocator.DEFAULT.directBuffer(CAPACITY, CAPACITY);
        packet = packetBuf.internalNioBuffer(0, CAPACITY);
        innerStart = packet.position() + encapsulator.headroom();
        end = packet.position() + CAPACITY;
        if (egress() != 1 || egress.packets() != 1) {
            throw new IllegalStateException("the benchmark packet was not forwarded: " + egress.packets());
        }
    }

    /** Closes everything and releases the buffer. */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        tun.close();
        channel.close();
        receiver.close();
        packetBuf.release();
    }

    /**
     * One iteration of {@code Forwarder.egressLoop}, minus the {@code while (running)} and the exception handling.
     *
     * @return 1 if the packet was sent, 0 if dropped
     */
    @Benchmark
    public int egress() throws IOException {
        packet.limit(end).position(innerStart);
        int n = tun.read(packet);
        packet.limit(innerStart + n).position(innerStart);
        DropReason reason = encapsulator.encapsulate(packet, MTU);
        if (reason != null) {
            egress.drop(reason);
            return 0;
        }
        int innerLength = packet.limit() - innerStart;
        Peer peer = peers.lookup(Ipv4Header.destination(packet, innerStart));
        if (peer == null) {
            egress.drop(DropReason.NO_ROUTE);
            return 0;
        }
        int sent = toMemory ? memory.send(packet, peer.endpoint()) : channel.send(packet, peer.endpoint());
        if (sent == 0) {
            egress.drop(DropReason.SEND_FAILED);
            return 0;
        }
        egress.packet(innerLength);
        return 1;
    }
}
