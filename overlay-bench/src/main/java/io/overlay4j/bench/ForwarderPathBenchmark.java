package io.overlay4j.bench;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.PeerStats;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.VxlanEncapsulator;
import io.overlay4j.udp.internal.DatagramPort;
import io.overlay4j.udp.internal.EgressPath;
import io.overlay4j.udp.internal.IngressPath;
import io.overlay4j.udp.internal.TrafficCounters;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One packet through the forwarder's real loop bodies, on the benchmark thread: {@link EgressPath#step()} and
 * {@link IngressPath#drain} are exactly what {@code Forwarder}'s threads call in their {@code while (running)}
 * loops, so nothing here reproduces the pipeline.
 *
 * <ul>
 *   <li>{@link #egressDrain}: the same per packet, 64 packets per {@link EgressPath#drain} (what the threads call on
 *   a pollable TUN): single packets for one peer are batched into one segmented send;</li>
 *   <li>{@link #egress}: {@code TunDevice.read} from an {@link InMemoryTunDevice} in its allocation-free
 *   {@code injectRepeated} mode (a copy of the packet into the path's buffer, like the kernel's), IPv4 validation, one
 *   volatile read of the peer table and the lookup (1,000 peers), {@code encapsulate} with the peer's context, the
 *   send and the counter updates, node-wide and the peer's (the ICMP branch is not taken: every packet has a
 *   route);</li>
 *   <li>{@link #ingress} (always from the in-memory port, whatever {@code sink} says): a receive from an in-memory port that copies one prepared
 *   datagram in, the admission's sender lookup, {@code decapsulate}, validation, the source and destination checks,
 *   the peer's counters and last-seen time (one clock read per drain), the TUN write (discarded: counted only) and
 *   the node-wide counter update.</li>
 * </ul>
 *
 * <p>The datagram port is {@code sink}:
 * <ul>
 *   <li>{@code memory}: an in-memory port that consumes what is sent and hands out a prepared datagram on receive;
 *   no system call at all, so this is the pure userspace cost per packet;</li>
 *   <li>{@code loopback}: a real {@link UdpSocket} (JNA {@code sendto}) to a socket on loopback that nobody reads:
 *   <strong>one {@code sendto} system call per packet is included</strong>. Once the receiver's buffer is full the
 *   kernel drops the datagrams, so the receive side's socket-queue work is only partly counted.</li>
 * </ul>
 * Plain TUN (no virtio header): one packet per read. Every packet has the same destination, so the lookup's branches
 * are predictable; see {@link PeerLookupBenchmark} for varied destinations and {@link OffloadBenchmark} for the
 * super-packet work.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Thread)
public class ForwarderPathBenchmark {
    private static final int MTU = 1472;
    private static final int PEERS = 1000;

    /** Inner packet length in bytes. */
    @Param({"64", "512", "1400"})
    public int size;

    /** Where the datagrams go: {@code memory} (no syscall) or {@code loopback} (a real sendto). */
    @Param({"memory", "loopback"})
    public String sink;

    /** The encapsulation: {@code flannel-udp} or {@code vxlan}. */
    @Param({"flannel-udp", "vxlan"})
    public String encapsulator;

    private InMemoryTunDevice tun;
    private UdpSocket socket;
    private UdpSocket receiver;
    private EgressPath egress;
    private IngressPath ingress;
    private final TrafficCounters egressCounters = new TrafficCounters();
    private final TrafficCounters ingressCounters = new TrafficCounters();

    /** An in-memory datagram port: sends are consumed, every receive returns the same prepared datagram. */
    static final class MemoryPort implements DatagramPort {
        final ByteBuffer datagram;
        final int sender;
        final int senderPort;
        long sentBytes;

        MemoryPort(ByteBuffer datagram, int sender, int senderPort) {
            this.datagram = datagram;
            this.sender = sender;
            this.senderPort = senderPort;
        }

        @Override
        public boolean groEnabled() {
            return false;
        }

        @Override
        public boolean gsoSupported() {
            return false;
        }

        @Override
        public void send(ByteBuffer payload, int address, int port) {
            sentBytes += payload.remaining();
            payload.position(payload.limit());
        }

        @Override
        public void sendSegmented(ByteBuffer payload, int segmentSize, int address, int port) {
            send(payload, address, port);
        }

        @Override
        public int receive(ByteBuffer dst, UdpSocket.Received info) {
            int n = datagram.remaining();
            dst.put(dst.position(), datagram, datagram.position(), n);
            dst.position(dst.position() + n);
            info.set(sender, senderPort, n, n, false);
            return n;
        }

        @Override
        public int tryReceive(ByteBuffer dst, UdpSocket.Received info) {
            return receive(dst, info);
        }

        @Override
        public boolean isOpen() {
            return true;
        }
    }

    /** Builds the devices, the peers (all at the loopback receiver) and both paths. */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        Encapsulator encap = EncapDecapBenchmark.encapsulator(encapsulator);
        // Peer i at 127.0.0.1 + i (one host per lease, as in a real network; all of 127/8 is loopback), all received
        // by one socket bound to the wildcard address.
        receiver = UdpSocket.open(new InetSocketAddress("0.0.0.0", 0), UdpSocket.Options.defaults());
        int port = receiver.localAddress().getPort();
        int loopback = 0x7f000001;
        PeerTable table = Fixtures.peerTable(PEERS, loopback, port, encap, true);
        AtomicReference<PeerTable> peers = new AtomicReference<>(table);
        int own = Fixtures.subnetOf(PEERS);
        Ipv4Prefix ownSubnet = Ipv4Prefix.of(own, 24);
        tun = new InMemoryTunDevice("bench0", MTU);
        tun.discardWrites(true);
        int peer = Fixtures.subnetOf(PEERS / 2);
        tun.injectRepeated(Fixtures.ipv4(own | 2, peer | 9, size), Long.MAX_VALUE);

        // What the peer sends us: its packet behind the encapsulation's header for us.
        ByteBuffer datagram = ByteBuffer.allocateDirect(encap.headroom() + size);
        datagram.put(encap.headroom(), Fixtures.ipv4(peer | 9, own | 2, size));
        datagram.position(encap.headroom());
        if (encap instanceof VxlanEncapsulator) {
            VxlanEncapsulator vx = (VxlanEncapsulator) encap;
            Object toUs = vx.peerContext(new Lease(ownSubnet, new LeaseAttributes(Ipv4Prefix.fromInt(loopback), null,
                    "vxlan", vx.backendData()), null));
            vx.encapsulate(datagram, toUs, MTU);
        }
        MemoryPort memory = new MemoryPort(datagram, loopback + PEERS / 2, port);
        DatagramPort out;
        if ("memory".equals(sink)) {
            out = memory;
        } else if ("loopback".equals(sink)) {
            socket = UdpSocket.open(new InetSocketAddress("127.0.0.1", 0), UdpSocket.Options.defaults());
            out = DatagramPort.of(socket);
        } else {
            throw new IllegalArgumentException("unknown sink: " + sink);
        }
        egress = new EgressPath(tun, out, encap, MTU, own, peers, egressCounters, Throwable::printStackTrace);
        ingress = new IngressPath(tun, memory, encap, MTU, ownSubnet, Fixtures.NETWORK, true, peers, ingressCounters,
                Throwable::printStackTrace);
        if (egress() != 1 || egressCounters.packets() != 1) {
            throw new IllegalStateException("the benchmark packet was not sent");
        }
        ingress();
        if (ingressCounters.packets() != 1) {
            throw new IllegalStateException("the benchmark datagram was not admitted: "
                    + TrafficCounters.snapshot(egressCounters, ingressCounters));
        }
        PeerStats counted = table.lookup(peer | 9).stats();
        if (counted.egressPackets() != 1 || counted.ingressPackets() != 1) {
            throw new IllegalStateException("the peer's counters did not count: " + counted);
        }
    }

    /** Closes the sockets. */
    @TearDown(Level.Trial)
    public void tearDown() {
        tun.close();
        receiver.close();
        if (socket != null) {
            socket.close();
        }
    }

    /** One iteration of the forwarder's egress loop. @return the datagrams sent */
    @Benchmark
    public int egress() throws IOException {
        return egress.step();
    }

    /**
     * One drain of the egress loop over 64 queued packets, as a forwarder thread on a pollable TUN runs it: the
     * packets for the one peer leave as one batched send (with {@code sink=loopback} one {@code UDP_SEGMENT}
     * {@code sendmsg} for 64 datagrams, or 44 and 20 at 1,400 B). Time per packet.
     */
    @Benchmark
    @OperationsPerInvocation(64)
    public int egressDrain() throws IOException {
        return egress.drain(64);
    }

    /** One drain of the forwarder's ingress loop over one datagram (always from the in-memory port). */
    @Benchmark
    public int ingress() throws IOException {
        return ingress.drain(1);
    }
}
