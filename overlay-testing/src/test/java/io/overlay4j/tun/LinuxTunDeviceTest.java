package io.overlay4j.tun;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.TunOptions;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

class LinuxTunDeviceTest {
    private static final Logger LOG = LoggerFactory.getLogger(LinuxTunDeviceTest.class);
    private static final int TUN_ADDRESS = Ipv4Prefix.toInt(Ipv4Prefix.parseAddress("100.96.1.0"));
    private static final int REMOTE = Ipv4Prefix.toInt(Ipv4Prefix.parseAddress("100.96.2.3"));
    private static final int PROTO_ICMP = 1;
    private static final int PROTO_UDP = 17;

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    private final List<AutoCloseable> resources = new ArrayList<>();
    private ExecutorService readers;
    private NetworkNamespace ns;

    @BeforeEach
    void setUp() throws IOException {
        readers = Executors.newCachedThreadPool();
        ns = namespaces.create();
    }

    @AfterEach
    void tearDown() throws Exception {
        for (int i = resources.size() - 1; i >= 0; i--) {
            resources.get(i).close();
        }
        readers.shutdownNow();
        assertTrue(readers.awaitTermination(5, TimeUnit.SECONDS), "a reader thread is stuck");
    }

    private <T extends AutoCloseable> T track(T resource) {
        resources.add(resource);
        return resource;
    }

    /** flannel's setup: TUN flannel0, 100.96.1.0/32, up, 100.96.0.0/16 dev flannel0. */
    private LinuxTunDevice flannelTun() throws Exception {
        LinuxTunDevice tun = track(ns.call(() -> LinuxTunDevice.open(TunOptions.defaults())));
        try (NetlinkRouteProgrammer p = ns.call(NetlinkRouteProgrammer::open)) {
            p.addAddress(tun.name(), Ipv4Prefix.fromInt(TUN_ADDRESS), 32);
            p.setLinkUp(tun.name());
            p.addRoute(Route.viaDevice(Ipv4Prefix.parse("100.96.0.0/16"), tun.name()));
        }
        return tun;
    }

    /** Reads packets until one of {@code protocol} arrives (others, if any, are skipped), within 5 s. */
    private ByteBuffer readPacket(LinuxTunDevice tun, ByteBuffer buffer, int protocol) throws Exception {
        Future<ByteBuffer> f = readers.submit(() -> {
            while (true) {
                buffer.clear();
                tun.read(buffer);
                buffer.flip();
                if ((buffer.get(0) & 0xf0) == 0x40 && (buffer.get(9) & 0xff) == protocol) {
                    return buffer;
                }
                LOG.info("skipping packet of {} bytes, first byte {}", buffer.remaining(), buffer.get(0));
            }
        });
        try {
            return f.get(5, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            tun.close();
            throw new AssertionError("no packet of protocol " + protocol + " on " + tun.name() + " within 5 s");
        }
    }

    @Test
    void opensFlannel0WithMtuTxqueuelenAndNoIpv6() throws Exception {
        LinuxTunDevice tun = track(ns.call(() -> LinuxTunDevice.open(TunOptions.defaults().withMtu(1400))));
        assertEquals("flannel0", tun.name());
        assertEquals(1400, tun.mtu());
        assertTrue(tun.isOpen());
        try (NetlinkRouteProgrammer p = ns.call(NetlinkRouteProgrammer::open)) {
            assertEquals(p.linkIndex("flannel0"), tun.index());
            assertEquals(1400, p.mtu("flannel0"));
            assertFalse(p.isUp("flannel0"), "link state is left to the RouteProgrammer");
        }
        String link = namespaces.ip(ns, "-d", "-o", "link", "show", "flannel0");
        assertTrue(link.contains("qlen " + LinuxTunDevice.TX_QUEUE_LEN), link);
        assertTrue(link.contains("tun type tun pi off"), link);
        assertEquals("1", namespaces.exec(ns, "cat", "/proc/sys/net/ipv6/conf/flannel0/disable_ipv6").trim());
        assertEquals("1", namespaces.exec(ns, "cat", "/proc/sys/net/ipv4/conf/flannel0/accept_local").trim());

        LinuxTunDevice second = track(ns.call(() -> LinuxTunDevice.open(TunOptions.defaults())));
        assertEquals("flannel1", second.name(), "the kernel numbers the template");
        LinuxTunDevice named = track(ns.call(() -> LinuxTunDevice.open(new TunOptions("o4jt-tun", 1472))));
        assertEquals("o4jt-tun", named.name());
    }

    @Test
    void udpDatagramRoutedToTheTunIsRead() throws Exception {
        LinuxTunDevice tun = flannelTun();
        byte[] payload = "hello overlay4j".getBytes(StandardCharsets.US_ASCII);
        int sourcePort = ns.call(() -> {
            try (DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET)) {
                ch.send(ByteBuffer.wrap(payload), new InetSocketAddress(Ipv4Prefix.fromInt(REMOTE), 9999));
                return ((InetSocketAddress) ch.getLocalAddress()).getPort();
            }
        });
        ByteBuffer p = readPacket(tun, ByteBuffer.allocateDirect(tun.mtu()), PROTO_UDP);

        assertEquals(20 + 8 + payload.length, p.remaining());
        assertEquals(0x45, p.get(0) & 0xff, "IPv4, 20-byte header");
        assertEquals(p.remaining(), p.getShort(2) & 0xffff, "total length");
        assertEquals(PROTO_UDP, p.get(9));
        assertEquals(TUN_ADDRESS, p.getInt(12), "source is the TUN's address");
        assertEquals(REMOTE, p.getInt(16));
        assertEquals(0, checksum(p, 0, 20), "header checksum");
        assertEquals(sourcePort, p.getShort(20) & 0xffff);
        assertEquals(9999, p.getShort(22) & 0xffff);
        assertEquals(8 + payload.length, p.getShort(24) & 0xffff);
        byte[] got = new byte[payload.length];
        p.get(28, got);
        assertArrayEquals(payload, got);
    }

    @Test
    void echoRequestWrittenToTheTunIsAnsweredByTheKernel() throws Exception {
        LinuxTunDevice tun = flannelTun();
        byte[] data = "ping from overlay4j".getBytes(StandardCharsets.US_ASCII);
        for (boolean direct : new boolean[] {true, false}) {
            int seq = direct ? 1 : 2;
            ByteBuffer request = echoRequest(direct, REMOTE, TUN_ADDRESS, 0x4242, seq, data);
            int length = request.remaining();
            assertEquals(length, tun.write(request));
            assertEquals(request.limit(), request.position(), "write consumes the buffer");

            ByteBuffer buf = direct ? ByteBuffer.allocateDirect(2048) : ByteBuffer.allocate(2048);
            ByteBuffer reply = readPacket(tun, buf, PROTO_ICMP);
            assertEquals(length, reply.remaining());
            assertEquals(TUN_ADDRESS, reply.getInt(12));
            assertEquals(REMOTE, reply.getInt(16));
            assertEquals(0, checksum(reply, 0, 20), "IP header checksum");
            assertEquals(0, reply.get(20), "ICMP echo reply");
            assertEquals(0, checksum(reply, 20, length - 20), "ICMP checksum");
            assertEquals(0x4242, reply.getShort(24) & 0xffff);
            assertEquals(seq, reply.getShort(26) & 0xffff);
            byte[] got = new byte[data.length];
            reply.get(28, got);
            assertArrayEquals(data, got);
        }

        // A buffer shorter than the packet gets the first bytes; the position advances by what was stored.
        // ...and a read-only heap buffer can be written (its array is hidden).
        ByteBuffer readOnly = echoRequest(false, REMOTE, TUN_ADDRESS, 0x4242, 3, data).asReadOnlyBuffer();
        assertEquals(28 + data.length, tun.write(readOnly));
        assertFalse(readOnly.hasRemaining());
        ByteBuffer small = ByteBuffer.allocateDirect(20);
        Future<Integer> n = readers.submit(() -> tun.read(small));
        assertEquals(20, n.get(5, TimeUnit.SECONDS));
        assertEquals(20, small.position());
        assertEquals(TUN_ADDRESS, small.getInt(12));
    }

    @Test
    void blockedReadIsWokenByClose() throws Exception {
        LinuxTunDevice tun = flannelTun();
        Future<Integer> reader = readers.submit(() -> tun.read(ByteBuffer.allocateDirect(2048)));
        Thread.sleep(300);
        assertFalse(reader.isDone(), "nothing was sent, the read must block");
        long start = System.nanoTime();
        tun.close();
        ExecutionException e = assertThrows(ExecutionException.class, () -> reader.get(2, TimeUnit.SECONDS));
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertInstanceOf(ClosedChannelException.class, e.getCause());
        assertTrue(millis < 1000, "woken after " + millis + " ms");
        assertFalse(tun.isOpen());
        tun.close();
        assertThrows(ClosedChannelException.class, () -> tun.read(ByteBuffer.allocateDirect(2048)));
        assertThrows(ClosedChannelException.class, () -> tun.write(ByteBuffer.allocateDirect(28)));

        try (NetlinkRouteProgrammer p = ns.call(NetlinkRouteProgrammer::open)) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
            while (true) {
                try {
                    p.linkIndex("flannel0");
                } catch (ErrnoException gone) {
                    assertEquals(ErrnoException.ENODEV, gone.errno());
                    break;
                }
                if (System.nanoTime() > deadline) {
                    fail("flannel0 still exists after close");
                }
                Thread.sleep(10);
            }
        }
    }

    @Test
    void awaitReadableWithATimeoutReturnsFalseWhenQuietAndTrueForAPacket() throws Exception {
        LinuxTunDevice tun = flannelTun();
        ByteBuffer packet = ByteBuffer.allocateDirect(2048);
        while (tun.tryRead(packet.clear()) >= 0) {
            // whatever the kernel sent when the link came up
        }
        long start = System.nanoTime();
        assertFalse(tun.awaitReadable(50), "nothing is queued");
        assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(45), "returned before the timeout");
        ns.call(() -> {
            try (DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET)) {
                return ch.send(ByteBuffer.wrap(new byte[] {4}), new InetSocketAddress(Ipv4Prefix.fromInt(REMOTE), 9));
            }
        });
        assertTrue(tun.awaitReadable(5000), "a routed packet is queued");
        assertTrue(tun.tryRead(packet.clear()) > 0);
        tun.close();
        assertThrows(ClosedChannelException.class, () -> tun.awaitReadable(10));
    }

    @Test
    void aSocketWaitsOnItselfAndATunTogetherAndSaysWhichIsReadable() throws Exception {
        namespaces.ip(ns, "link", "set", "lo", "up"); // the socket is on 127.0.0.1
        LinuxTunDevice tun = flannelTun();
        UdpSocket socket = track(ns.call(() -> UdpSocket.open(new InetSocketAddress("127.0.0.1", 0),
                UdpSocket.Options.defaults())));
        ByteBuffer packet = ByteBuffer.allocateDirect(2048);
        while (tun.tryRead(packet.clear()) >= 0) {
            // whatever the kernel sent when the link came up
        }
        Future<Integer> waiting = readers.submit(() -> socket.awaitReadable(tun));
        Thread.sleep(300);
        assertFalse(waiting.isDone(), "nothing is queued, the wait must block");

        // A datagram to the socket wakes the waiter; while it stays queued, the wait returns at once.
        ns.call(() -> {
            try (DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET)) {
                return ch.send(ByteBuffer.wrap(new byte[] {1, 2, 3}), socket.localAddress());
            }
        });
        assertEquals(UdpSocket.SOCKET_READABLE, waiting.get(5, TimeUnit.SECONDS));
        assertEquals(UdpSocket.SOCKET_READABLE, socket.awaitReadable(tun));
        assertEquals(3, socket.tryReceive(ByteBuffer.allocateDirect(2048), new UdpSocket.Received()));

        // A packet the kernel routes into the TUN wakes it too, and is reported as the TUN's.
        waiting = readers.submit(() -> socket.awaitReadable(tun));
        ns.call(() -> {
            try (DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET)) {
                return ch.send(ByteBuffer.wrap(new byte[] {4}), new InetSocketAddress(Ipv4Prefix.fromInt(REMOTE), 9));
            }
        });
        assertEquals(UdpSocket.TUN_READABLE, waiting.get(5, TimeUnit.SECONDS));
        while (tun.tryRead(packet.clear()) >= 0) {
            // drain whatever the kernel queued (the datagram, maybe more)
        }

        // wakeup() ends the wait with nothing readable, once.
        waiting = readers.submit(() -> socket.awaitReadable(tun));
        Thread.sleep(200);
        assertFalse(waiting.isDone());
        socket.wakeup();
        assertEquals(0, waiting.get(5, TimeUnit.SECONDS));

        // A timed wait with nothing to read ends after its timeout, told apart from a wakeup(); one with something
        // queued returns it at once.
        long start = System.nanoTime();
        assertEquals(UdpSocket.TIMED_OUT, socket.awaitReadable(tun, 50));
        long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(waited >= 45 && waited < 2000, "waited " + waited + " ms for a 50 ms timeout");
        waiting = readers.submit(() -> socket.awaitReadable(tun, 10_000));
        Thread.sleep(200);
        assertFalse(waiting.isDone());
        socket.wakeup();
        assertEquals(0, waiting.get(5, TimeUnit.SECONDS));
        ns.call(() -> {
            try (DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET)) {
                return ch.send(ByteBuffer.wrap(new byte[] {5}), socket.localAddress());
            }
        });
        assertEquals(UdpSocket.SOCKET_READABLE, socket.awaitReadable(tun, 10_000));
        assertEquals(1, socket.tryReceive(ByteBuffer.allocateDirect(2048), new UdpSocket.Received()));

        // Closing the TUN wakes the waiter, which reports the close; the socket stays open for its owner.
        Future<Integer> onTunClose = readers.submit(() -> socket.awaitReadable(tun));
        Thread.sleep(200);
        assertFalse(onTunClose.isDone());
        tun.close();
        ExecutionException e = assertThrows(ExecutionException.class, () -> onTunClose.get(2, TimeUnit.SECONDS));
        assertInstanceOf(ClosedChannelException.class, e.getCause());
        assertTrue(socket.isOpen());

        // And closing the socket wakes a waiter on a socket and another TUN.
        LinuxTunDevice other = track(ns.call(() -> LinuxTunDevice.open(TunOptions.defaults().withName("o4jw%d"))));
        Future<Integer> onSocketClose = readers.submit(() -> socket.awaitReadable(other));
        Thread.sleep(200);
        assertFalse(onSocketClose.isDone());
        socket.close();
        e = assertThrows(ExecutionException.class, () -> onSocketClose.get(2, TimeUnit.SECONDS));
        assertInstanceOf(ClosedChannelException.class, e.getCause());
        assertTrue(other.isOpen(), "the TUN stays open: it belongs to its owner");
        assertThrows(ClosedChannelException.class, () -> socket.awaitReadable(other));
    }

    @Test
    void closeDuringTrafficNeverFailsWithAKernelError() throws Exception {
        for (int round = 0; round < 20; round++) {
            LinuxTunDevice tun = flannelTun();
            byte[] data = new byte[64];
            Future<Object> writer = readers.submit(() -> {
                ByteBuffer req = echoRequest(true, REMOTE, TUN_ADDRESS, 7, 1, data);
                while (true) {
                    req.rewind();
                    tun.write(req);
                }
            });
            Future<Object> reader = readers.submit(() -> {
                ByteBuffer buf = ByteBuffer.allocateDirect(2048);
                while (true) {
                    buf.clear();
                    tun.read(buf);
                }
            });
            Thread.sleep(5 + round);
            tun.close();
            for (Future<Object> f : List.of(writer, reader)) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(2, TimeUnit.SECONDS));
                assertInstanceOf(ClosedChannelException.class, e.getCause(), "round " + round);
            }
        }
    }

    @Test
    void roundTripTimeAndNoAllocationPerPacket() throws Exception {
        LinuxTunDevice tun = flannelTun();
        ByteBuffer request = echoRequest(true, REMOTE, TUN_ADDRESS, 9, 1, new byte[56]);
        ByteBuffer reply = ByteBuffer.allocateDirect(2048);
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long[] result = readers.submit(() -> {
            long[] t = new long[2];
            for (int i = 0; i < 20_000; i++) {
                roundTrip(tun, request, reply, t);
            }
            int n = 50_000;
            t[0] = 0;
            t[1] = 0;
            long bytes = mx.getCurrentThreadAllocatedBytes();
            long start = System.nanoTime();
            for (int i = 0; i < n; i++) {
                roundTrip(tun, request, reply, t);
            }
            long nanos = System.nanoTime() - start;
            return new long[] {nanos / n, mx.getCurrentThreadAllocatedBytes() - bytes, t[0] / n, t[1] / n};
        }).get(60, TimeUnit.SECONDS);
        LOG.info("TUN round trip (write ICMP echo request, kernel answers, await and read reply; direct buffers): {}"
                + " ns (write incl. kernel receive path {} ns, await + read {} ns); {} bytes allocated in 50000 round"
                + " trips",
                result[0], result[2], result[3], result[1]);
        assertTrue(result[0] < 1_000_000, "a round trip took " + result[0] + " ns");
        assertTrue(result[1] < 50_000, result[1] + " bytes allocated in 50000 round trips");
    }

    private static void roundTrip(LinuxTunDevice tun, ByteBuffer request, ByteBuffer reply, long[] t)
            throws IOException {
        request.rewind();
        long t0 = System.nanoTime();
        tun.write(request);
        long t1 = System.nanoTime();
        tun.awaitReadable(); // the reply is queued before write returns: a poll that returns at once
        do {
            reply.clear();
            tun.read(reply);
        } while ((reply.get(9) & 0xff) != PROTO_ICMP);
        t[0] += t1 - t0;
        t[1] += System.nanoTime() - t1;
    }

    /** An IPv4 ICMP echo request with valid checksums, position 0, limit its length. */
    static ByteBuffer echoRequest(boolean direct, int src, int dst, int id, int seq, byte[] data) {
        int length = 28 + data.length;
        ByteBuffer b = direct ? ByteBuffer.allocateDirect(length) : ByteBuffer.allocate(length);
        b.put((byte) 0x45).put((byte) 0).putShort((short) length).putShort((short) seq).putShort((short) 0x4000)
                .put((byte) 64).put((byte) PROTO_ICMP).putShort((short) 0).putInt(src).putInt(dst);
        b.putShort(10, (short) checksum(b, 0, 20));
        b.put((byte) 8).put((byte) 0).putShort((short) 0).putShort((short) id).putShort((short) seq).put(data);
        b.putShort(22, (short) checksum(b, 20, 8 + data.length));
        return b.flip();
    }

    /** The Internet checksum of {@code b[off, off+len)}; 0 when the range includes a correct checksum field. */
    static int checksum(ByteBuffer b, int off, int len) {
        long sum = 0;
        for (int i = 0; i + 1 < len; i += 2) {
            sum += b.getShort(off + i) & 0xffff;
        }
        if ((len & 1) != 0) {
            sum += (b.get(off + len - 1) & 0xff) << 8;
        }
        while ((sum >> 16) != 0) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (int) (~sum & 0xffff);
    }
}
