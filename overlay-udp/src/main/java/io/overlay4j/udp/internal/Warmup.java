package io.overlay4j.udp.internal;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.VxlanEncapsulator;
import java.io.IOException;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs the data plane's own code on synthetic traffic before the first real packet, so that the JIT has compiled the
 * per-packet path by then: otherwise the first few thousand packets (every ping of a quiet node, the first second of
 * a transfer) run in the interpreter at tens of microseconds each, and the compiler threads compete with the traffic
 * for the CPU.
 *
 * <p>The traffic never touches the kernel's routing or the node's devices: the TUN is a {@link LinuxTunDevice} pair
 * over a socket pair ({@link LinuxTunDevice#openPair}) and the socket a {@link UdpSocket} on 127.0.0.1 that sends to
 * itself, so the compiled code sees the same classes as the live path (no deoptimisation when real packets come).
 * Two synthetic nodes in 198.18.0.0/16 (RFC 2544's benchmarking range) exchange ICMP, UDP and, with virtio headers,
 * TCP super-packets through an {@link EgressPath} and an {@link IngressPath} configured like the live ones. Once per
 * configuration and JVM; bounded in time; gives up quietly (logged at debug) if loopback is unusable.
 */
public final class Warmup {
    private static final Logger LOG = LoggerFactory.getLogger(Warmup.class);
    private static final Set<String> DONE = ConcurrentHashMap.newKeySet();
    /** Rounds to run: each method on the path is then called well past C2's compile thresholds. */
    private static final int ROUNDS = 6000;
    private static final int SENDER_NET = 0xc6120100; // 198.18.1.0
    private static final int RECEIVER_NET = 0xc6120200; // 198.18.2.0
    private static final int LOOPBACK = 0x7f000001;

    private Warmup() {
    }

    /**
     * Warms up the path for this configuration, unless done before in this JVM.
     *
     * @param budgetNanos the most time to spend
     * @return the rounds run (0 if skipped or impossible)
     */
    public static int run(Encapsulator encapsulator, int mtu, boolean vnet, boolean gro, boolean checkSender,
                          long budgetNanos) {
        String key = encapsulator.getClass().getName() + "/" + mtu + "/" + vnet + "/" + gro + "/" + checkSender;
        if (!DONE.add(key)) {
            return 0;
        }
        long start = System.nanoTime();
        try {
            int rounds = runRounds(encapsulator, mtu, vnet, gro, checkSender, start + budgetNanos);
            LOG.debug("JIT warm-up of the data path ({}): {} rounds in {} ms", key, rounds,
                    (System.nanoTime() - start) / 1_000_000);
            return rounds;
        } catch (IOException | RuntimeException e) {
            LOG.debug("JIT warm-up of the data path ({}) skipped: {}", key, e.toString());
            return 0;
        }
    }

    private static int runRounds(Encapsulator encapsulator, int mtu, boolean vnet, boolean gro, boolean checkSender,
                                 long deadline) throws IOException {
        LinuxTunDevice[] pair = LinuxTunDevice.openPair("o4j-warmup", mtu, vnet);
        try (LinuxTunDevice kernel = pair[0];
             LinuxTunDevice data = pair[1];
             UdpSocket socket = UdpSocket.open(new InetSocketAddress(Ipv4Prefix.fromInt(LOOPBACK), 0),
                     UdpSocket.Options.builder().gro(gro).sendBufferSize(1 << 20).receiveBufferSize(1 << 20)
                             .build())) {
            int port = socket.localAddress().getPort();
            Ipv4Prefix sender = Ipv4Prefix.of(SENDER_NET, 24);
            Ipv4Prefix receiver = Ipv4Prefix.of(RECEIVER_NET, 24);
            LeaseAttributes attributes = attributes(encapsulator);
            Instant expiry = Instant.now().plusSeconds(3600);
            AtomicReference<PeerTable> senderPeers = new AtomicReference<>(PeerTable.builder(encapsulator)
                    .put(new Lease(receiver, attributes, expiry), port).build());
            AtomicReference<PeerTable> receiverPeers = new AtomicReference<>(PeerTable.builder(encapsulator)
                    .put(new Lease(sender, attributes, expiry), port).build());
            if (senderPeers.get().size() != 1 || receiverPeers.get().size() != 1) {
                throw new IOException("the encapsulator takes no synthetic peer");
            }
            DatagramPort datagrams = DatagramPort.of(socket);
            TrafficCounters counters = new TrafficCounters();
            EgressPath egress = new EgressPath(data, datagrams, encapsulator, mtu, SENDER_NET, senderPeers,
                    counters, e -> { });
            IngressPath ingress = new IngressPath(data, datagrams, encapsulator, mtu, receiver,
                    Ipv4Prefix.of(0xc6120000, 16), checkSender, receiverPeers, new TrafficCounters(), e -> { });
            ByteBuffer[][] schedule = schedule(mtu, vnet);
            warmChecksums();
            ByteBuffer sink = ByteBuffer.allocateDirect(LinuxTunDevice.VNET_HDR_LEN + 65535);
            int rounds = 0;
            long delivered = 0;
            while (rounds < ROUNDS && System.nanoTime() < deadline) {
                ByteBuffer[] frames = schedule[rounds % schedule.length];
                for (ByteBuffer frame : frames) {
                    frame.clear();
                    kernel.write(frame);
                }
                // The live loop's waits return at once here (something is queued), so the JIT compiles them too:
                // the egress thread's plain and timed waits, the ingress thread's wait alone and with the TUN.
                if (rounds % 2 == 0) {
                    data.awaitReadable();
                } else {
                    data.awaitReadable(0);
                    if (rounds % 8 == 3) {
                        socket.wakeup(); // as when the egress thread parks: the wait consumes the wake-up
                    }
                    socket.awaitReadable(data);
                }
                // Now and then a drain that stops at its limit with more queued, as under load.
                if (rounds % 4 == 1) {
                    egress.drain(1);
                }
                egress.drain(frames.length);
                socket.awaitReadable();
                if (rounds % 4 == 1) {
                    ingress.drain(1);
                }
                ingress.drain(frames.length);
                while (true) {
                    sink.clear();
                    if (kernel.tryRead(sink) < 0) {
                        break;
                    }
                    delivered++;
                }
                if (rounds % 4 == 2) {
                    // Timed waits that time out (nothing is queued now), as a quiet node's are: the egress thread's
                    // before it parks, the tick of the thread that serves the node alone.
                    data.awaitReadable(0);
                    socket.awaitReadable(data, 0);
                }
                rounds++;
                if (rounds == 100 && delivered == 0) {
                    throw new IOException("no synthetic packet made the round trip over loopback (sent "
                            + counters.packets() + ")");
                }
            }
            awaitQuietCompiler(System.nanoTime() + 500_000_000L);
            return rounds;
        }
    }

    /**
     * Waits (at most until the deadline, {@code System.nanoTime()}) until the JIT has compiled nothing for 50 ms, so
     * that the code compiled for a warm-up is installed before real packets come, not while they are handled.
     */
    public static void awaitQuietCompiler(long deadline) {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        if (jit == null || !jit.isCompilationTimeMonitoringSupported()) {
            return;
        }
        long last = jit.getTotalCompilationTime();
        int quiet = 0;
        while (quiet < 5 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            long now = jit.getTotalCompilationTime();
            quiet = now == last ? quiet + 1 : 0;
            last = now;
        }
    }

    /**
     * Sums every length from 0 to 200 bytes at even and odd offsets of a direct and a heap buffer: live packets end
     * on any tail, and a tail the synthetic ones never had would cost a recompilation of the path that inlines the
     * sum.
     */
    private static void warmChecksums() {
        ByteBuffer direct = ByteBuffer.allocateDirect(256);
        ByteBuffer heap = ByteBuffer.allocate(256);
        for (int round = 0; round < 20; round++) {
            for (int length = 0; length <= 200; length++) {
                Checksums.sum(direct, round & 1, length);
                Checksums.sum(heap, round & 1, length);
            }
        }
    }

    /** A lease for a synthetic peer at 127.0.0.1 that this encapsulator can reach. */
    private static LeaseAttributes attributes(Encapsulator encapsulator) {
        Inet4Address loopback = Ipv4Prefix.fromInt(LOOPBACK);
        if (encapsulator instanceof VxlanEncapsulator) {
            return new LeaseAttributes(loopback, null, VxlanEncapsulator.BACKEND_TYPE,
                    ((VxlanEncapsulator) encapsulator).backendData());
        }
        return LeaseAttributes.udp(loopback);
    }

    /**
     * What the synthetic sender's TUN hands over, round by round (the schedule repeats): ICMP, runs of equal UDP
     * datagrams broken by a shorter one, and with virtio headers (but for every 8th round, as a ping-only node has)
     * TCP ACKs with partial checksums and super-packets of two flows, a full 64 KiB one every 32nd round; every 32nd
     * round a packet nobody routes (ICMP unreachable).
     * The variety matters: the JIT compiles only the branches it saw taken, and a branch first taken by live traffic
     * costs a deoptimisation and a recompilation (some remain: live flows are never quite synthetic ones).
     */
    private static ByteBuffer[][] schedule(int mtu, boolean vnet) {
        int hdr = vnet ? VirtioNetHeader.LENGTH : 0;
        int src = SENDER_NET | 2;
        int dst = RECEIVER_NET | 3;
        int udpLength = Math.min(1400, mtu - 28);
        ByteBuffer icmp = packet(hdr, src, dst, Ipv4Header.PROTOCOL_ICMP, 64);
        ByteBuffer udp = packet(hdr, src, dst, Ipv4Header.PROTOCOL_UDP, udpLength);
        ByteBuffer udpShort = packet(hdr, src, dst, Ipv4Header.PROTOCOL_UDP, udpLength / 2 + 1);
        ByteBuffer unrouted = packet(hdr, src, 0xc6127f03, Ipv4Header.PROTOCOL_UDP, 101);
        if (vnet) {
            // As the kernel hands UDP over to a TUN with TUN_F_CSUM: the checksum left for us to finish.
            partialUdp(udp, hdr, src, dst, udpLength);
            partialUdp(udpShort, hdr, src, dst, udpLength / 2 + 1);
        }
        ByteBuffer[][] schedule = new ByteBuffer[32][];
        int mss = mtu - 40;
        ByteBuffer ack = vnet ? tcp(hdr, src, dst, 40001, 0, 0, TcpHeader.FLAG_ACK) : null;
        ByteBuffer flowA = vnet ? tcp(hdr, src, dst, 40002, 4, mss, TcpHeader.FLAG_ACK) : null;
        ByteBuffer flowB = vnet ? tcp(hdr, src, dst, 40003, 4, mss, TcpHeader.FLAG_ACK | TcpHeader.FLAG_PSH) : null;
        ByteBuffer full = vnet ? tcp(hdr, src, dst, 40004, Math.max(2, 65000 / mss), mss, TcpHeader.FLAG_ACK) : null;
        ByteBuffer pushed = vnet ? tcp(hdr, src, dst, 40005, 1, mss / 2, TcpHeader.FLAG_ACK | TcpHeader.FLAG_PSH)
                : null; // one short segment with PSH, as a request/response protocol sends
        for (int r = 0; r < schedule.length; r++) {
            java.util.List<ByteBuffer> round = new java.util.ArrayList<>();
            round.add(icmp);
            round.add(udp);
            round.add(udp);
            round.add(r % 4 == 3 ? udpShort : udp);
            if (vnet && r % 8 != 5) { // some rounds without TCP: a flush with no flow to forget is a branch too
                round.add(ack);
                round.add(r % 32 == 0 ? full : r % 2 == 0 ? flowA : flowB);
                if (r % 4 == 3) {
                    round.add(flowB); // the same flow again behind a PSH: an item that can take no more
                }
                if (r % 4 == 1) {
                    round.add(pushed);
                }
                if (r == 16) {
                    // More segments than the coalescer holds at once (128): it flushes mid-drain.
                    round.add(full);
                    round.add(full);
                    round.add(full);
                }
            }
            if (r % 32 == 31) {
                round.add(unrouted);
            }
            schedule[r] = round.toArray(new ByteBuffer[0]);
        }
        return schedule;
    }

    private static void partialUdp(ByteBuffer b, int hdr, int src, int dst, int l4) {
        long pseudo = Checksums.pseudoHeaderSum(src, dst, Ipv4Header.PROTOCOL_UDP, l4);
        Ipv4Header.putShort(b, hdr + 20 + VirtioNetHeader.UDP_CSUM_OFFSET, Checksums.fold(pseudo));
        VirtioNetHeader.set(b, 0, VirtioNetHeader.FLAG_NEEDS_CSUM, VirtioNetHeader.GSO_NONE, 0, 0, 20,
                VirtioNetHeader.UDP_CSUM_OFFSET);
    }

    /**
     * A TCP/IPv4 packet from port {@code sport} as a TUN with offloads hands it over: a partial checksum (the
     * pseudo-header sum, {@code NEEDS_CSUM}) and, with {@code segments} > 0, a {@code GSO_TCPV4} super-packet of that
     * many {@code mss}-byte segments; else a bare header (an ACK).
     */
    private static ByteBuffer tcp(int hdr, int src, int dst, int sport, int segments, int mss, int flags) {
        int l4 = 20 + segments * mss;
        ByteBuffer b = packet(hdr, src, dst, TcpHeader.PROTOCOL_TCP, l4);
        int tcp = hdr + 20;
        Ipv4Header.putShort(b, tcp + TcpHeader.SOURCE_PORT_OFFSET, sport);
        Ipv4Header.putShort(b, tcp + TcpHeader.DESTINATION_PORT_OFFSET, 5201);
        Ipv4Header.putIntBigEndian(b, tcp + TcpHeader.SEQUENCE_OFFSET, 1000);
        Ipv4Header.putIntBigEndian(b, tcp + TcpHeader.ACKNOWLEDGMENT_OFFSET, 2000);
        b.put(tcp + TcpHeader.DATA_OFFSET_OFFSET, (byte) 0x50);
        b.put(tcp + TcpHeader.FLAGS_OFFSET, (byte) flags);
        Ipv4Header.putShort(b, tcp + TcpHeader.WINDOW_OFFSET, 0xffff);
        Ipv4Header.putShort(b, tcp + TcpHeader.URGENT_POINTER_OFFSET, 0);
        long pseudo = Checksums.pseudoHeaderSum(src, dst, TcpHeader.PROTOCOL_TCP, l4);
        Ipv4Header.putShort(b, tcp + TcpHeader.CHECKSUM_OFFSET, Checksums.fold(pseudo));
        VirtioNetHeader.set(b, 0, VirtioNetHeader.FLAG_NEEDS_CSUM,
                segments > 0 ? VirtioNetHeader.GSO_TCPV4 : VirtioNetHeader.GSO_NONE, segments > 0 ? 40 : 0,
                segments > 0 ? mss : 0, 20, VirtioNetHeader.TCP_CSUM_OFFSET);
        return b;
    }

    /** An IPv4 packet of {@code l4Length} payload bytes after {@code hdr} zero bytes (the virtio header). */
    private static ByteBuffer packet(int hdr, int src, int dst, int protocol, int l4Length) {
        ByteBuffer b = ByteBuffer.allocateDirect(hdr + 20 + l4Length);
        int ip = hdr;
        b.put(ip, (byte) 0x45);
        Ipv4Header.putShort(b, ip + Ipv4Header.TOTAL_LENGTH_OFFSET, 20 + l4Length);
        Ipv4Header.putShort(b, ip + Ipv4Header.FRAGMENT_OFFSET, Ipv4Header.FLAG_DONT_FRAGMENT);
        b.put(ip + Ipv4Header.TTL_OFFSET, (byte) 64);
        b.put(ip + Ipv4Header.PROTOCOL_OFFSET, (byte) protocol);
        Ipv4Header.putIntBigEndian(b, ip + Ipv4Header.SOURCE_OFFSET, src);
        Ipv4Header.putIntBigEndian(b, ip + Ipv4Header.DESTINATION_OFFSET, dst);
        Ipv4Header.updateChecksum(b, ip);
        for (int i = ip + 20 + 8; i < b.capacity(); i++) {
            b.put(i, (byte) i);
        }
        if (protocol == Ipv4Header.PROTOCOL_UDP) {
            Ipv4Header.putShort(b, ip + 20, 40000);
            Ipv4Header.putShort(b, ip + 22, 5201);
            Ipv4Header.putShort(b, ip + 24, l4Length);
        } else if (protocol == Ipv4Header.PROTOCOL_ICMP) {
            b.put(ip + 20, (byte) 8);
            Ipv4Header.putShort(b, ip + 22, Checksums.checksum(b, ip + 20, l4Length));
        }
        return b;
    }
}
