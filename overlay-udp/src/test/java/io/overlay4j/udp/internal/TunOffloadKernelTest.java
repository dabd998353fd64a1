package io.overlay4j.udp.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.TunOptions;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.internal.TcpSegmenter.Result;
import io.overlay4j.udp.testing.Packets;
import io.overlay4j.udp.testing.TcpPackets;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link LinuxTunDevice} with offloads, against the kernel, in a scratch namespace: TSO super-packets read from the
 * device are split by {@link TcpSegmenter} and written back with zero virtio headers.
 *
 * <p>How a TCP connection runs through one TUN device: a "reflector" thread reads every packet the kernel routes to
 * the device and writes it back with source and destination addresses swapped (which leaves every checksum valid:
 * the pseudo-header sum is commutative). A client on the device's address A connecting to B:port then talks to a
 * server listening on A:port, which sees the client as B; both directions cross the device.
 */
class TunOffloadKernelTest {
    private static final Logger LOG = LoggerFactory.getLogger(TunOffloadKernelTest.class);
    private static final int TUN_ADDRESS = Packets.addr(100, 96, 1, 0);
    private static final int REMOTE = Packets.addr(100, 96, 2, 3);
    private static final int STREAM_BYTES = 4 << 20;
    private static final int FRAME = 10 + 65535;

    /** Used as a plain helper: {@link #tearDown()} closes it. */
    private final TestNamespaces namespaces = new TestNamespaces();
    private final ExecutorService threads = Executors.newCachedThreadPool();
    private LinuxTunDevice tun;

    @BeforeEach
    void requireKernelNetworking() {
        Requirements.requireKernelNetworking();
    }

    @AfterEach
    void tearDown() throws Exception {
        try {
            if (tun != null) {
                tun.close();
            }
            threads.shutdownNow();
            assertTrue(threads.awaitTermination(5, TimeUnit.SECONDS), "a thread is stuck");
        } finally {
            namespaces.close();
        }
    }

    /** {@code ip -n <ns> <args>}. */
    private static String ip(NetworkNamespace ns, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of("ip", "-n", ns.name()));
        cmd.addAll(List.of(args));
        return TestNamespaces.exec(cmd);
    }

    @Test
    void plainUnlessAskedFor() throws Exception {
        NetworkNamespace ns = namespaces.create();
        tun = ns.call(() -> LinuxTunDevice.open(TunOptions.defaults()));
        assertFalse(tun.vnetHeader());
        assertEquals(0, tun.offloadFlags());
        assertTrue(ip(ns, "-d", "link", "show", tun.name()).contains("tun type tun pi off vnet_hdr off"));
        assertFalse(TunOptions.defaults().offloads());
        assertTrue(new TunOptions("x", 1400).withOffloads(true).withMtu(1300).withName("y").offloads());
    }

    @Test
    void tsoSuperPacketsAreSegmentedAndZeroHeaderPacketsAccepted() throws Exception {
        NetworkNamespace ns = offloadTun();
        echoRequestWithZeroHeaderIsAnswered();
        Stats stats = streamThroughTheReflector(ns, false);
        assertEquals(0, stats.framesWritten - stats.plainFramesWritten, "no GSO frame written");
    }

    /**
     * The reflector segments each super-packet, then coalesces the segments again with {@link TcpCoalescer} and
     * writes the merged frames ({@code NEEDS_CSUM | GSO_TCPV4}): the kernel must accept them and deliver the stream.
     */
    @Test
    void coalescedSuperPacketsAreAcceptedByTheKernel() throws Exception {
        NetworkNamespace ns = offloadTun();
        Stats stats = streamThroughTheReflector(ns, true);
        assertTrue(stats.framesWritten - stats.plainFramesWritten > 0, "GSO frames written");
    }

    /**
     * USO: a datagram sent with {@code UDP_SEGMENT} inside the namespace (by python3: the JDK cannot set that
     * option) reaches the TUN as one {@code GSO_UDP_L4} super-datagram, which {@link TcpSegmenter} splits.
     */
    @Test
    void usoSuperDatagramsAreSegmented() throws Exception {
        NetworkNamespace ns = offloadTun();
        assumeTrue((tun.offloadFlags() & LinuxTunDevice.TUN_F_USO4) != 0, "the kernel granted no USO");
        assumeTrue(onPath("python3"), "needs python3 to send with UDP_SEGMENT");
        ByteBuffer in = ByteBuffer.allocateDirect(FRAME);
        Future<Integer> reader = threads.submit(() -> {
            while (true) {
                in.clear();
                int n = tun.read(in);
                if (VirtioNetHeader.gsoType(in, 0) == VirtioNetHeader.GSO_UDP_L4) {
                    return n;
                }
            }
        });
        // UDP_SEGMENT is 103 at level SOL_UDP (17); 3,072 bytes in segments of 1,000.
        TestNamespaces.exec(List.of("ip", "netns", "exec", ns.name(), "python3", "-c",
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(17, 103, 1000); "
                        + "s.sendto(bytes(range(256)) * 12, ('100.96.2.3', 8285))"));
        int n = reader.get(5, TimeUnit.SECONDS);
        assertEquals(10 + 28 + 3072, n);
        assertEquals(1000, VirtioNetHeader.gsoSize(in, 0));

        TcpSegmenter segmenter = new TcpSegmenter(tun.mtu());
        ByteBuffer out = ByteBuffer.allocateDirect(FRAME);
        assertEquals(Result.SEGMENTED, segmenter.segment(in, 0, n, out, 0));
        assertEquals(4, segmenter.segmentCount());
        assertEquals(28 + 72, segmenter.lastSegmentLength());
        int at = 0;
        for (int i = 0; i < 4; i++) {
            int length = i == 3 ? segmenter.lastSegmentLength() : segmenter.segmentLength();
            byte[] d = new byte[length];
            out.get(at, d);
            assertTrue(Packets.headerChecksumOk(d, 0), "IP header checksum " + i);
            assertEquals(length - 20, TcpPackets.getShort(d, 24), "UDP length " + i);
            assertTrue(TcpPackets.l4ChecksumOk(d, 0), "UDP checksum " + i);
            for (int k = 28; k < length; k++) {
                assertEquals((byte) (i * 1000 + k - 28), d[k], "payload byte " + k + " of datagram " + i);
            }
            at += length;
        }
    }

    /**
     * The other way: a run of UDP datagrams coalesced into one {@code GSO_UDP_L4} frame and written to the TUN reaches
     * a socket in the namespace as the same datagrams, one by one, with their bytes; a corrupt one stays apart and
     * the kernel drops it.
     */
    @Test
    void coalescedUdpDatagramsArriveAsTheyWereSent() throws Exception {
        NetworkNamespace ns = offloadTun();
        assumeTrue(TcpCoalescer.udpMergeSupported(), "USO writes need Linux 6.2");
        DatagramChannel socket = ns.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress(Ipv4Prefix.fromInt(TUN_ADDRESS), 7000)));
        try (socket) {
            List<byte[]> sent = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                sent.add(TcpCoalescerTest.udpDatagram(7000, i < 19 ? 1200 : 77, i * 1200));
            }
            byte[] corrupt = TcpCoalescerTest.udpDatagram(7000, 1200, 99);
            corrupt[100] ^= 1;
            TcpCoalescer coalescer = new TcpCoalescer(64, 128, 512 * 1024, true);
            ByteBuffer in = ByteBuffer.allocateDirect(FRAME);
            List<byte[]> offered = new ArrayList<>(sent);
            offered.add(10, corrupt);
            for (byte[] d : offered) {
                in.clear().put(d).flip();
                assertTrue(coalescer.offer(in, 0, d.length));
            }
            List<Integer> gsoTypes = new ArrayList<>();
            coalescer.flush((buf, offset, length, packets, bytes) -> {
                gsoTypes.add((int) buf.get(offset + 1));
                buf.limit(offset + length).position(offset);
                try {
                    assertEquals(length, tun.write(buf));
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            // Ten merged, the corrupt one as it is, the other ten (shorter last) merged.
            assertEquals(List.of(VirtioNetHeader.GSO_UDP_L4, VirtioNetHeader.GSO_NONE, VirtioNetHeader.GSO_UDP_L4),
                    gsoTypes);
            socket.configureBlocking(false);
            ByteBuffer got = ByteBuffer.allocate(2048);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            for (int i = 0; i < sent.size(); i++) {
                while (socket.receive(got.clear()) == null) {
                    assertTrue(System.nanoTime() < deadline, "datagram " + i + " of " + sent.size() + " missing");
                    Thread.sleep(1);
                }
                byte[] d = sent.get(i);
                assertEquals(d.length - 28, got.position(), "length of datagram " + i);
                assertArrayEquals(java.util.Arrays.copyOfRange(d, 28, d.length),
                        java.util.Arrays.copyOf(got.array(), got.position()), "bytes of datagram " + i);
            }
            Thread.sleep(50);
            assertEquals(null, socket.receive(got.clear()), "the corrupt datagram must not arrive");
        }
    }

    private static boolean onPath(String program) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, program))) {
                return true;
            }
        }
        return false;
    }

    /** A namespace with an offload TUN device set up as flannel does. */
    private NetworkNamespace offloadTun() throws Exception {
        NetworkNamespace ns = namespaces.create();
        tun = ns.call(() -> LinuxTunDevice.open(TunOptions.defaults().withOffloads(true)));
        assertTrue(tun.vnetHeader(), "offloads granted");
        int tso = LinuxTunDevice.TUN_F_CSUM | LinuxTunDevice.TUN_F_TSO4 | LinuxTunDevice.TUN_F_TSO6;
        assertEquals(tso, tun.offloadFlags() & tso);
        LOG.info("{} offload flags 0x{}", tun, Integer.toHexString(tun.offloadFlags()));
        assertTrue(ip(ns, "-d", "link", "show", tun.name()).contains("vnet_hdr on"));
        try (NetlinkRouteProgrammer p = ns.call(NetlinkRouteProgrammer::open)) {
            p.addAddress(tun.name(), Ipv4Prefix.fromInt(TUN_ADDRESS), 32);
            p.setLinkUp(tun.name());
            p.addRoute(Route.viaDevice(Ipv4Prefix.parse("100.96.0.0/16"), tun.name()));
        }
        return ns;
    }

    private void echoRequestWithZeroHeaderIsAnswered() throws Exception {
        byte[] icmp = Packets.ipv4(REMOTE, TUN_ADDRESS, Ipv4Header.PROTOCOL_ICMP, 64, 28 + 32);
        icmp[20] = 8; // echo request, code 0
        icmp[21] = 0;
        TcpPackets.putShort(icmp, 22, 0);
        TcpPackets.putShort(icmp, 22, Packets.referenceChecksum(icmp, 20, icmp.length - 20));
        ByteBuffer frame = ByteBuffer.allocateDirect(10 + icmp.length).put(10, icmp);
        assertEquals(frame.capacity(), tun.write(frame));

        ByteBuffer in = ByteBuffer.allocateDirect(FRAME);
        Future<byte[]> reply = threads.submit(() -> {
            while (true) {
                in.clear();
                int n = tun.read(in);
                if (n > 30 && (in.get(10) & 0xf0) == 0x40 && in.get(10 + 9) == Ipv4Header.PROTOCOL_ICMP) {
                    byte[] b = new byte[n];
                    in.get(0, b);
                    return b;
                }
            }
        });
        byte[] r = reply.get(5, TimeUnit.SECONDS);
        assertEquals(VirtioNetHeader.GSO_NONE, r[1], "not GSO");
        byte[] packet = java.util.Arrays.copyOfRange(r, 10, r.length);
        assertEquals(icmp.length, packet.length);
        assertEquals(0, packet[20], "echo reply");
        assertEquals(TUN_ADDRESS, TcpPackets.getInt(packet, 12));
        assertEquals(REMOTE, TcpPackets.getInt(packet, 16));
        assertTrue(Packets.headerChecksumOk(packet, 0));
        if ((r[0] & VirtioNetHeader.FLAG_NEEDS_CSUM) == 0) {
            assertEquals(0, Packets.referenceChecksum(packet, 20, packet.length - 20), "ICMP checksum");
        }
    }

    /** What the reflector saw. */
    private static final class Stats {
        final Map<Result, Integer> results = new EnumMap<>(Result.class);
        int superPackets;
        int largestSuperPacket;
        int largestGsoSize;
        int segmentsChecked;
        int framesWritten;
        int plainFramesWritten;
        String failure;
        String lastDrop;
    }

    private Stats streamThroughTheReflector(NetworkNamespace ns, boolean coalesce) throws Exception {
        Stats stats = new Stats();
        Future<?> reflector = threads.submit(() -> reflect(stats, coalesce));
        ServerSocketChannel server = ns.call(() -> ServerSocketChannel.open()
                .bind(new InetSocketAddress(Ipv4Prefix.fromInt(TUN_ADDRESS), 0)));
        try (server) {
            int port = ((InetSocketAddress) server.getLocalAddress()).getPort();
            Future<Long> receiver = threads.submit(() -> receive(server));
            SocketChannel client = ns.call(() -> SocketChannel.open(
                    new InetSocketAddress(Ipv4Prefix.fromInt(REMOTE), port)));
            try (client) {
                threads.submit(() -> send(client));
                try {
                    assertEquals(STREAM_BYTES, receiver.get(30, TimeUnit.SECONDS), "bytes received in order");
                } catch (TimeoutException e) {
                    synchronized (stats) {
                        throw new AssertionError("the stream stalled; reflector: " + stats.results + ", failure "
                                + stats.failure + ", last drop " + stats.lastDrop);
                    }
                }
            }
        }
        tun.close();
        reflector.get(5, TimeUnit.SECONDS);
        synchronized (stats) {
            LOG.info("reflector: {}; {} super-packets, largest {} bytes, largest gso_size {}, {} segments checked;"
                    + " wrote {} frames, {} with a zero header", stats.results, stats.superPackets,
                    stats.largestSuperPacket, stats.largestGsoSize, stats.segmentsChecked, stats.framesWritten,
                    stats.plainFramesWritten);
            assertEquals(null, stats.failure);
            assertTrue(stats.superPackets > 0, "the kernel sent TSO super-packets");
            assertTrue(stats.largestSuperPacket > tun.mtu(), "larger than the MTU");
            assertTrue(stats.largestGsoSize <= tun.mtu() - 40, "gso_size fits the MTU: " + stats.largestGsoSize);
            assertTrue(stats.segmentsChecked > STREAM_BYTES / 1500, "segments checked: " + stats.segmentsChecked);
            return stats;
        }
    }

    /** Sends the stream pattern, then FIN. */
    private static Void send(SocketChannel client) throws IOException {
        ByteBuffer chunk = ByteBuffer.allocateDirect(256 * 1024);
        for (int sent = 0; sent < STREAM_BYTES; ) {
            chunk.clear();
            int n = Math.min(chunk.capacity(), STREAM_BYTES - sent);
            for (int i = 0; i < n; i++) {
                chunk.put(i, TcpPackets.streamByte(sent + i));
            }
            chunk.limit(n);
            while (chunk.hasRemaining()) {
                client.write(chunk);
            }
            sent += n;
        }
        client.shutdownOutput();
        return null;
    }

    /** Accepts one connection and reads it to the end, checking the stream pattern; returns the byte count. */
    private static long receive(ServerSocketChannel server) throws IOException {
        try (SocketChannel s = server.accept()) {
            ByteBuffer buf = ByteBuffer.allocateDirect(256 * 1024);
            long total = 0;
            while (true) {
                buf.clear();
                int n = s.read(buf);
                if (n < 0) {
                    return total;
                }
                for (int i = 0; i < n; i++) {
                    if (buf.get(i) != TcpPackets.streamByte((int) (total + i))) {
                        throw new AssertionError("stream byte " + (total + i) + " differs");
                    }
                }
                total += n;
            }
        }
    }

    /**
     * Reads frames until the device closes; writes every IPv4 packet back, segmented, with addresses swapped, each
     * behind a zero virtio header or, with {@code coalesce}, merged again per read by a {@link TcpCoalescer}.
     */
    private void reflect(Stats stats, boolean coalesce) {
        TcpSegmenter segmenter = new TcpSegmenter(tun.mtu());
        TcpCoalescer coalescer = TcpCoalescer.withDefaults();
        TcpCoalescer.Sink sink = (buf, offset, length, frameCount, frameBytes) -> {
            buf.limit(offset + length).position(offset);
            try {
                tun.write(buf);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
            synchronized (stats) {
                stats.framesWritten++;
                if (VirtioNetHeader.gsoType(buf, offset) == VirtioNetHeader.GSO_NONE) {
                    stats.plainFramesWritten++;
                }
            }
        };
        ByteBuffer in = ByteBuffer.allocateDirect(FRAME);
        ByteBuffer segments = ByteBuffer.allocateDirect(2 * FRAME);
        ByteBuffer out = ByteBuffer.allocateDirect(FRAME);
        try {
            while (true) {
                in.clear();
                int n = tun.read(in);
                int gsoType = VirtioNetHeader.gsoType(in, 0);
                int gsoSize = VirtioNetHeader.gsoSize(in, 0);
                Result r = segmenter.segment(in, 0, n, segments, 0);
                synchronized (stats) {
                    stats.results.merge(r, 1, Integer::sum);
                }
                if (r.isDrop()) {
                    byte[] head = new byte[Math.min(n, 80)];
                    in.get(0, head);
                    synchronized (stats) {
                        stats.lastDrop = r + " " + n + " bytes: " + Packets.hex(head);
                    }
                    continue;
                }
                ByteBuffer src = r == Result.SEGMENTED ? segments : in;
                int at = segmenter.packetOffset();
                if ((src.get(at) & 0xf0) != 0x40) {
                    continue;
                }
                if (r == Result.SEGMENTED && gsoType == VirtioNetHeader.GSO_TCPV4 && n - 10 > tun.mtu()) {
                    synchronized (stats) {
                        stats.superPackets++;
                        stats.largestSuperPacket = Math.max(stats.largestSuperPacket, n - 10);
                        stats.largestGsoSize = Math.max(stats.largestGsoSize, gsoSize);
                    }
                }
                for (int i = 0; i < segmenter.segmentCount(); i++) {
                    boolean last = i == segmenter.segmentCount() - 1;
                    int length = last ? segmenter.lastSegmentLength() : segmenter.segmentLength();
                    if (r == Result.SEGMENTED) {
                        check(src, at, length, stats);
                    }
                    out.clear();
                    int a = src.getInt(at + Ipv4Header.SOURCE_OFFSET);
                    src.putInt(at + Ipv4Header.SOURCE_OFFSET, src.getInt(at + Ipv4Header.DESTINATION_OFFSET));
                    src.putInt(at + Ipv4Header.DESTINATION_OFFSET, a);
                    if (coalesce) {
                        if (!coalescer.offer(src, at, length)) {
                            coalescer.flush(sink);
                            coalescer.offer(src, at, length);
                        }
                    } else {
                        VirtioNetHeader.clear(out, 0);
                        out.put(10, src, at, length);
                        sink.frame(out, 0, 10 + length, 1, length);
                    }
                    at += length;
                }
                coalescer.flush(sink);
            }
        } catch (ClosedChannelException closed) {
            // the test is over
        } catch (java.io.UncheckedIOException e) {
            // A write from the sink after the test closed the device is the end too, not a failure.
            if (!(e.getCause() instanceof ClosedChannelException)) {
                synchronized (stats) {
                    stats.failure = e.toString();
                }
            }
        } catch (Throwable e) {
            synchronized (stats) {
                stats.failure = e.toString();
            }
        }
    }

    /** Checks one segment with the independent test implementation. */
    private static void check(ByteBuffer buf, int at, int length, Stats stats) {
        byte[] s = new byte[length];
        buf.get(at, s);
        synchronized (stats) {
            if (length > 1472 || TcpPackets.getShort(s, 2) != length || !Packets.headerChecksumOk(s, 0)
                    || !TcpPackets.l4ChecksumOk(s, 0)) {
                stats.failure = "bad segment: " + Packets.hex(java.util.Arrays.copyOf(s, Math.min(60, length)));
            }
            stats.segmentsChecked++;
        }
    }
}
