package io.overlay4j.tun;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.internal.Errno;
import io.overlay4j.tun.internal.LibC;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
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

class UdpSocketTest {
    private static final Logger LOG = LoggerFactory.getLogger(UdpSocketTest.class);
    private static final int LOOPBACK = 0x7f000001;
    private static final int SEGMENT = 1400;
    /** 39 full segments and a short last one: 40 datagrams. */
    private static final int BURST = 39 * SEGMENT + 777;
    private static final int BURST_DATAGRAMS = 40;

    // <linux/sockios.h>, <linux/ethtool.h>: the legacy ethtool ioctl for TX checksumming (struct ethtool_value).
    private static final long SIOCETHTOOL = 0x8946;
    private static final int ETHTOOL_GTXCSUM = 0x16;
    private static final int ETHTOOL_STXCSUM = 0x17;
    /** {@code SO_NO_CHECK} from {@code <asm-generic/socket.h>}. */
    private static final int SO_NO_CHECK = 11;

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    private final List<AutoCloseable> resources = new ArrayList<>();
    private ExecutorService threads;

    @BeforeEach
    void setUp() {
        threads = Executors.newCachedThreadPool();
    }

    @AfterEach
    void tearDown() throws Exception {
        for (int i = resources.size() - 1; i >= 0; i--) {
            resources.get(i).close();
        }
        threads.shutdownNow();
        assertTrue(threads.awaitTermination(5, TimeUnit.SECONDS), "a thread is stuck");
    }

    private UdpSocket open(UdpSocket.Options options) throws IOException {
        UdpSocket s = UdpSocket.open(new InetSocketAddress("127.0.0.1", 0), options);
        resources.add(s);
        return s;
    }

    private UdpSocket openGro() throws IOException {
        UdpSocket s = open(UdpSocket.Options.builder().gro(true).build());
        assertTrue(s.groEnabled(), "the kernel (6.18) accepts UDP_GRO");
        return s;
    }

    private static int port(UdpSocket s) {
        return s.localAddress().getPort();
    }

    /** Receives one run within 5 s (closing the socket on timeout so the thread ends). */
    private int receive(UdpSocket s, ByteBuffer dst, UdpSocket.Received info) throws Exception {
        Future<Integer> f = threads.submit(() -> s.receive(dst, info));
        try {
            return f.get(5, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            s.close();
            throw new AssertionError("nothing received on " + s.localAddress() + " within 5 s");
        }
    }

    /** {@code length} bytes, byte i of segment k (of {@code segment} bytes) is {@code (k * 31 + i) & 0xff}. */
    private static ByteBuffer pattern(int length, int segment) {
        ByteBuffer b = ByteBuffer.allocateDirect(length);
        for (int i = 0; i < length; i++) {
            b.put((byte) ((i / segment) * 31 + i % segment));
        }
        return b.flip();
    }

    private static void assertSegment(ByteBuffer run, int offset, int length, int index, String what) {
        for (int i = 0; i < length; i++) {
            if (run.get(offset + i) != (byte) (index * 31 + i)) {
                throw new AssertionError(what + ": datagram " + index + " differs at byte " + i);
            }
        }
    }

    @Test
    void tryReceiveReturnsAtOnceWhenNothingIsQueued() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket b = open(UdpSocket.Options.defaults());
        ByteBuffer dst = ByteBuffer.allocateDirect(2048);
        UdpSocket.Received info = new UdpSocket.Received();
        long start = System.nanoTime();
        assertEquals(-1, b.tryReceive(dst, info));
        assertTrue(System.nanoTime() - start < 1_000_000_000L, "tryReceive waited");
        assertEquals(0, dst.position(), "nothing stored");
        a.send(pattern(1400, Integer.MAX_VALUE), LOOPBACK, port(b));
        long deadline = System.nanoTime() + 5_000_000_000L;
        int n;
        while ((n = b.tryReceive(dst, info)) < 0) {
            assertTrue(System.nanoTime() < deadline, "the datagram never arrived");
            Thread.sleep(1);
        }
        assertEquals(1400, n);
        assertEquals(port(a), info.port());
        assertSegment(dst, 0, 1400, 0, "tryReceive");
        assertEquals(-1, b.tryReceive(dst.clear(), info));
    }

    @Test
    void plainDatagramsArriveByteExactWithTheirSender() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket b = open(UdpSocket.Options.defaults());
        assertEquals("127.0.0.1", a.localAddress().getAddress().getHostAddress());
        assertTrue(port(a) > 0, "the kernel picked a port");
        ByteBuffer dst = ByteBuffer.allocateDirect(UdpSocket.MAX_PAYLOAD + 10);
        UdpSocket.Received info = new UdpSocket.Received();
        for (int length : new int[] {1, 17, 1400, 9000, UdpSocket.MAX_PAYLOAD, 0}) {
            ByteBuffer payload = pattern(length, Integer.MAX_VALUE);
            assertEquals(length, a.send(payload, LOOPBACK, port(b)));
            assertEquals(payload.limit(), payload.position(), "send consumes the buffer");
            dst.clear().position(3);
            assertEquals(length, receive(b, dst, info));
            assertEquals(3 + length, dst.position());
            assertEquals(LOOPBACK, info.address(), info.toString());
            assertEquals(port(a), info.port());
            assertEquals(length, info.length());
            assertEquals(length, info.segmentSize(), "not coalesced");
            assertEquals(1, info.segmentCount());
            assertFalse(info.truncated());
            assertSegment(dst, 3, length, 0, "length " + length);
        }
        // And back: b's source address and port are reported to a.
        byte[] hello = "hello from b".getBytes(StandardCharsets.US_ASCII);
        b.send(ByteBuffer.allocateDirect(hello.length).put(hello).flip(), LOOPBACK, port(a));
        dst.clear();
        assertEquals(hello.length, receive(a, dst, info));
        byte[] got = new byte[hello.length];
        dst.get(0, got);
        assertArrayEquals(hello, got);
        assertEquals(port(b), info.port());

        // A datagram longer than the buffer is cut and says so.
        a.send(pattern(100, Integer.MAX_VALUE), LOOPBACK, port(b));
        ByteBuffer small = ByteBuffer.allocateDirect(40);
        assertEquals(40, receive(b, small, info));
        assertTrue(info.truncated());
        assertSegment(small, 0, 40, 0, "truncated");
    }

    @Test
    void gsoBurstArrivesAtAPlainReceiverAsSeparateDatagrams() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket b = open(UdpSocket.Options.builder().receiveBufferSize(1 << 20).build());
        assertTrue(a.gsoSupported(), "the kernel (6.18) knows UDP_SEGMENT");
        ByteBuffer burst = pattern(BURST, SEGMENT);
        assertEquals(BURST, a.sendSegmented(burst, SEGMENT, LOOPBACK, port(b)));
        assertEquals(BURST, burst.position());
        assertTrue(a.gsoSupported(), "loopback checksums in 'hardware': GSO was not refused");

        ByteBuffer dst = ByteBuffer.allocateDirect(65536);
        UdpSocket.Received info = new UdpSocket.Received();
        for (int k = 0; k < BURST_DATAGRAMS; k++) {
            dst.clear();
            int n = receive(b, dst, info);
            int expected = k < BURST_DATAGRAMS - 1 ? SEGMENT : 777;
            assertEquals(expected, n, "datagram " + k);
            assertEquals(1, info.segmentCount());
            assertEquals(port(a), info.port());
            assertSegment(dst, 0, n, k, "gso to plain");
        }
    }

    @Test
    void groReceiverGetsTheBurstInFewCallsAndSplitsIt() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket b = openGro();
        a.sendSegmented(pattern(BURST, SEGMENT), SEGMENT, LOOPBACK, port(b));
        a.sendSegmented(pattern(BURST, SEGMENT), SEGMENT, LOOPBACK, port(b));
        ByteBuffer dst = ByteBuffer.allocateDirect(UdpSocket.MAX_GRO_BYTES);
        UdpSocket.Received info = new UdpSocket.Received();
        int datagrams = 0;
        int calls = 0;
        boolean coalesced = false;
        while (datagrams < 2 * BURST_DATAGRAMS) {
            dst.clear();
            int n = receive(b, dst, info);
            calls++;
            if (info.segmentCount() > 1) {
                coalesced = true;
                assertEquals(SEGMENT, info.segmentSize(), info.toString());
            }
            for (int s = 0; s < info.segmentCount(); s++) {
                int k = datagrams % BURST_DATAGRAMS;
                int off = s * info.segmentSize();
                int len = Math.min(info.segmentSize(), n - off);
                assertEquals(k < BURST_DATAGRAMS - 1 ? SEGMENT : 777, len, "datagram " + datagrams);
                assertSegment(dst, off, len, k, "gro split");
                datagrams++;
            }
        }
        assertEquals(2 * BURST_DATAGRAMS, datagrams);
        LOG.info("GRO: {} datagrams in {} receive calls", datagrams, calls);
        assertTrue(coalesced, "no coalesced run arrived");
        assertTrue(calls <= 4, datagrams + " datagrams took " + calls + " receive calls");

        // Plain datagrams to a GRO socket arrive one by one with segmentSize = length.
        a.send(pattern(500, SEGMENT), LOOPBACK, port(b));
        dst.clear();
        assertEquals(500, receive(b, dst, info));
        assertEquals(500, info.segmentSize());
        assertEquals(1, info.segmentCount());

        assertThrows(IllegalArgumentException.class, () -> b.receive(ByteBuffer.allocateDirect(1500), info),
                "GRO needs room for a whole run");
    }

    @Test
    void refusedGsoFallsBackToOneDatagramPerSegment() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket b = openGro();
        a.pretendGsoRefused();
        assertTrue(a.gsoSupported(), "refusal is noticed at the first segmented send");
        for (int round = 0; round < 2; round++) {
            ByteBuffer burst = pattern(BURST, SEGMENT);
            assertEquals(BURST, a.sendSegmented(burst, SEGMENT, LOOPBACK, port(b)));
            assertEquals(BURST, burst.position());
            assertFalse(a.gsoSupported());
            ByteBuffer dst = ByteBuffer.allocateDirect(UdpSocket.MAX_GRO_BYTES);
            UdpSocket.Received info = new UdpSocket.Received();
            for (int k = 0; k < BURST_DATAGRAMS; k++) {
                dst.clear();
                int n = receive(b, dst, info);
                // A GRO receiver gets GSO runs whole: one datagram per call proves the fallback sent them singly.
                assertEquals(1, info.segmentCount(), "round " + round + ", datagram " + k + ": " + info);
                assertEquals(k < BURST_DATAGRAMS - 1 ? SEGMENT : 777, n);
                assertSegment(dst, 0, n, k, "fallback");
            }
        }
    }

    @Test
    void gsoAcrossAVethWithAndWithoutTxChecksumOffloadAndAboveTheMtu() throws Exception {
        NetworkNamespace nsA = namespaces.create();
        NetworkNamespace nsB = namespaces.create();
        String vethA = namespaces.uniqueName();
        namespaces.connect(nsA, vethA, "10.99.0.1/24", nsB, namespaces.uniqueName(), "10.99.0.2/24");
        int addressA = Ipv4Prefix.toInt(Ipv4Prefix.parseAddress("10.99.0.1"));
        int addressB = Ipv4Prefix.toInt(Ipv4Prefix.parseAddress("10.99.0.2"));
        UdpSocket a = nsA.call(() -> UdpSocket.open(new InetSocketAddress(0), UdpSocket.Options.defaults()));
        resources.add(a);
        UdpSocket b = nsB.call(() -> UdpSocket.open(new InetSocketAddress(8285),
                UdpSocket.Options.builder().receiveBufferSize(1 << 20).build()));
        resources.add(b);
        assertEquals(1, nsA.call(() -> txChecksum(vethA)), "veth starts with TX checksum offload on");

        ByteBuffer dst = ByteBuffer.allocateDirect(65536);
        UdpSocket.Received info = new UdpSocket.Received();
        for (int round = 0; round < 3; round++) {
            if (round == 1) {
                int errno = nsA.call(() -> setTxChecksum(vethA, false));
                Requirements.require(errno == 0, "cannot turn TX checksumming off on a veth (ioctl SIOCETHTOOL "
                        + "ETHTOOL_STXCSUM: " + ErrnoException.errnoName(errno) + ")");
                assertEquals(0, nsA.call(() -> txChecksum(vethA)));
            } else if (round == 2) {
                namespaces.ip(nsA, "link", "set", vethA, "mtu", "1300"); // a 1400-byte segment no longer fits
            }
            assertEquals(BURST, a.sendSegmented(pattern(BURST, SEGMENT), SEGMENT, addressB, 8285));
            if (round == 1) {
                // Linux 6.11 (commit 10154dbded6d) segments and checksums in software instead of failing with EIO.
                boolean softwareFallback = kernelAtLeast(6, 11);
                LOG.info("kernel {}: GSO without TX checksum offload {}", System.getProperty("os.version"),
                        a.gsoSupported() ? "accepted" : "refused, fallback used");
                assertEquals(softwareFallback, a.gsoSupported(), "GSO without TX checksum offload");
            } else {
                assertTrue(a.gsoSupported(), "round " + round + ": EMSGSIZE falls back for one call only");
            }
            for (int k = 0; k < BURST_DATAGRAMS; k++) {
                dst.clear();
                int n = receive(b, dst, info);
                assertEquals(k < BURST_DATAGRAMS - 1 ? SEGMENT : 777, n, "round " + round + ", datagram " + k);
                assertEquals(addressA, info.address());
                assertEquals(port(a), info.port());
                assertSegment(dst, 0, n, k, "veth round " + round);
            }
        }
    }

    private static boolean kernelAtLeast(int major, int minor) {
        String[] v = System.getProperty("os.version").split("[.-]");
        int ma = Integer.parseInt(v[0]);
        int mi = Integer.parseInt(v[1]);
        return ma > major || (ma == major && mi >= minor);
    }

    /** ETHTOOL_GTXCSUM on {@code device} in the calling thread's namespace: 1 on, 0 off. */
    private static int txChecksum(String device) throws IOException {
        try (Memory value = new Memory(8)) {
            value.setInt(0, ETHTOOL_GTXCSUM);
            value.setInt(4, -1);
            int errno = ethtool(device, value);
            if (errno != 0) {
                throw new ErrnoException("ioctl(SIOCETHTOOL ETHTOOL_GTXCSUM " + device + ")", errno);
            }
            return value.getInt(4);
        }
    }

    /** ETHTOOL_STXCSUM on {@code device}; returns 0 or the errno. */
    private static int setTxChecksum(String device, boolean on) {
        try (Memory value = new Memory(8)) {
            value.setInt(0, ETHTOOL_STXCSUM);
            value.setInt(4, on ? 1 : 0);
            return ethtool(device, value);
        }
    }

    private static int ethtool(String device, Memory value) {
        int fd = LibC.socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return LibC.errno();
        }
        try (Memory ifr = new Memory(LibC.IFREQ_SIZE)) {
            ifr.clear();
            byte[] name = device.getBytes(StandardCharsets.US_ASCII);
            ifr.write(0, name, 0, name.length);
            ifr.setPointer(LibC.IFREQ_UNION_OFFSET, value);
            return LibC.ioctl(fd, SIOCETHTOOL, ifr) < 0 ? LibC.errno() : 0;
        } finally {
            Errno.closeQuietly(fd);
        }
    }

    @Test
    void gsoRefusedByTheKernelFallsBackForGood() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket b = openGro();
        // SO_NO_CHECK (no UDP checksums) makes the kernel refuse every GSO send with EINVAL.
        ByteBuffer one = ByteBuffer.allocateDirect(4).order(java.nio.ByteOrder.nativeOrder()).putInt(0, 1);
        assertEquals(0, LibC.setsockopt(a.fd(), LibC.SOL_SOCKET, SO_NO_CHECK,
                io.overlay4j.tun.internal.DirectBuffers.address(one), 4), "setsockopt(SO_NO_CHECK)");
        for (int round = 0; round < 2; round++) {
            assertEquals(BURST, a.sendSegmented(pattern(BURST, SEGMENT), SEGMENT, LOOPBACK, port(b)));
            assertFalse(a.gsoSupported(), "EINVAL turns GSO off");
            ByteBuffer dst = ByteBuffer.allocateDirect(UdpSocket.MAX_GRO_BYTES);
            UdpSocket.Received info = new UdpSocket.Received();
            for (int k = 0; k < BURST_DATAGRAMS; k++) {
                dst.clear();
                int n = receive(b, dst, info);
                assertEquals(1, info.segmentCount(), "sent one by one: " + info);
                assertEquals(k < BURST_DATAGRAMS - 1 ? SEGMENT : 777, n);
                assertSegment(dst, 0, n, k, "kernel refusal, round " + round);
            }
        }
    }

    @Test
    void sendBatchReachesSeveralPeers() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket[] peers = {open(UdpSocket.Options.defaults()), open(UdpSocket.Options.defaults())};
        int count = 2 * UdpSocket.MAX_BATCH + 6; // three sendmmsg calls
        ByteBuffer[] payloads = new ByteBuffer[count + 1];
        int[] addresses = new int[count + 1];
        int[] ports = new int[count + 1];
        for (int i = 0; i < count; i++) {
            payloads[i + 1] = pattern(100 + i, Integer.MAX_VALUE);
            addresses[i + 1] = LOOPBACK;
            ports[i + 1] = port(peers[i % 2]);
        }
        assertEquals(count, a.sendBatch(payloads, addresses, ports, 1, count));
        ByteBuffer dst = ByteBuffer.allocateDirect(2048);
        UdpSocket.Received info = new UdpSocket.Received();
        for (int i = 0; i < count; i++) {
            assertEquals(payloads[i + 1].limit(), payloads[i + 1].position(), "sent buffers are consumed");
            dst.clear();
            int n = receive(peers[i % 2], dst, info);
            assertEquals(100 + i, n, "datagram " + i + " in order at its peer");
            assertEquals(port(a), info.port());
            assertSegment(dst, 0, n, 0, "batch " + i);
        }
        assertThrows(IllegalArgumentException.class, () -> a.sendBatch(payloads, addresses, ports, 0, count + 2));
    }

    @Test
    void wakeupReturnsTheWaiterOrElseTheNextWaitOnce() throws Exception {
        UdpSocket s = open(UdpSocket.Options.defaults());
        Future<?> waiter = threads.submit(() -> {
            s.awaitReadable();
            return null;
        });
        Thread.sleep(300);
        assertFalse(waiter.isDone(), "nothing was sent, the wait must block");
        long start = System.nanoTime();
        s.wakeup();
        waiter.get(2, TimeUnit.SECONDS);
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(1), "woken promptly");

        // No waiter: the next wait returns at once, and only that one (wakeups do not pile up).
        s.wakeup();
        s.wakeup();
        threads.submit(() -> {
            s.awaitReadable();
            return null;
        }).get(2, TimeUnit.SECONDS);
        Future<?> next = threads.submit(() -> {
            s.awaitReadable();
            return null;
        });
        Thread.sleep(300);
        assertFalse(next.isDone(), "the wakeup was consumed: the wait blocks again");
        s.wakeup();
        next.get(2, TimeUnit.SECONDS);
        assertEquals(-1, s.tryReceive(ByteBuffer.allocateDirect(2048), new UdpSocket.Received()),
                "a wakeup is no datagram");

        s.close();
        s.wakeup(); // a no-op once closed
        assertThrows(ClosedChannelException.class, s::awaitReadable);
    }

    @Test
    void blockedReceiveIsWokenByClose() throws Exception {
        UdpSocket s = open(UdpSocket.Options.builder().gro(true).build());
        Future<Integer> receiver = threads.submit(() -> s.receive(ByteBuffer.allocateDirect(65536),
                new UdpSocket.Received()));
        Thread.sleep(300);
        assertFalse(receiver.isDone(), "nothing was sent, the receive must block");
        long start = System.nanoTime();
        s.close();
        ExecutionException e = assertThrows(ExecutionException.class, () -> receiver.get(2, TimeUnit.SECONDS));
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertInstanceOf(ClosedChannelException.class, e.getCause());
        assertTrue(millis < 1000, "woken after " + millis + " ms");
        assertFalse(s.isOpen());
        s.close();
        ByteBuffer p = ByteBuffer.allocateDirect(10);
        assertThrows(ClosedChannelException.class, () -> s.send(p, LOOPBACK, 9));
        assertThrows(ClosedChannelException.class, () -> s.sendSegmented(p, 5, LOOPBACK, 9));
        assertThrows(ClosedChannelException.class,
                () -> s.receive(ByteBuffer.allocateDirect(65536), new UdpSocket.Received()));
        assertEquals(0, p.position(), "a refused send leaves the buffer alone");
    }

    @Test
    void closeDuringTrafficNeverFailsWithAKernelError() throws Exception {
        for (int round = 0; round < 10; round++) {
            UdpSocket a = open(UdpSocket.Options.builder().gro(true).build());
            Future<Object> sender = threads.submit(() -> {
                ByteBuffer burst = pattern(BURST, SEGMENT);
                while (true) {
                    burst.rewind();
                    a.sendSegmented(burst, SEGMENT, LOOPBACK, port(a)); // to itself: its own receiver drains
                }
            });
            Future<Object> receiver = threads.submit(() -> {
                ByteBuffer dst = ByteBuffer.allocateDirect(65536);
                UdpSocket.Received info = new UdpSocket.Received();
                while (true) {
                    dst.clear();
                    a.receive(dst, info);
                }
            });
            Thread.sleep(5 + round);
            a.close();
            for (Future<Object> f : List.of(sender, receiver)) {
                ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(2, TimeUnit.SECONDS));
                assertInstanceOf(ClosedChannelException.class, e.getCause(), "round " + round);
            }
        }
    }

    @Test
    void buffersAreForcedAboveTheSysctlMaximumAsRoot() throws Exception {
        Requirements.requireRoot();
        // Not Files.readString: on JDK 17 it returns "4" for a procfs file holding "4194304".
        long rmemMax = Long.parseLong(Files.readAllLines(Path.of("/proc/sys/net/core/rmem_max")).get(0).trim());
        long wmemMax = Long.parseLong(Files.readAllLines(Path.of("/proc/sys/net/core/wmem_max")).get(0).trim());
        int size = (int) Math.min(Integer.MAX_VALUE / 4, Math.max(Math.max(rmemMax, wmemMax) * 2, 8 << 20));
        UdpSocket s = open(UdpSocket.Options.builder().sendBufferSize(size).receiveBufferSize(size).build());
        LOG.info("asked for {} bytes with rmem_max {} and wmem_max {}: {}", size, rmemMax, wmemMax, s);
        assertEquals(2L * size, s.receiveBufferSize(), "the kernel doubles the forced request");
        assertEquals(2L * size, s.sendBufferSize());
        assertTrue(s.receiveBufferSize() > 2 * rmemMax && s.sendBufferSize() > 2 * wmemMax);
        UdpSocket d = open(UdpSocket.Options.defaults());
        assertTrue(d.receiveBufferSize() < s.receiveBufferSize(), "defaults leave the kernel's sizes");
    }

    @Test
    void rejectsWhatTheKernelWouldMangle() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        ByteBuffer big = ByteBuffer.allocateDirect(65 * 100);
        assertThrows(IllegalArgumentException.class, () -> a.sendSegmented(big, 100, LOOPBACK, 9), "65 segments");
        assertThrows(IllegalArgumentException.class, () -> a.sendSegmented(big, 0, LOOPBACK, 9));
        assertThrows(IllegalArgumentException.class,
                () -> a.sendSegmented(ByteBuffer.allocateDirect(0), 100, LOOPBACK, 9));
        assertThrows(IllegalArgumentException.class,
                () -> a.send(ByteBuffer.allocateDirect(UdpSocket.MAX_PAYLOAD + 1), LOOPBACK, 9));
        assertThrows(IllegalArgumentException.class, () -> a.send(ByteBuffer.allocate(10), LOOPBACK, 9));
        assertThrows(IllegalArgumentException.class, () -> a.send(ByteBuffer.allocateDirect(10), LOOPBACK, 0));
        assertThrows(IllegalArgumentException.class,
                () -> a.receive(ByteBuffer.allocate(100), new UdpSocket.Received()));
        assertEquals(0, big.position());
        UdpSocket taken = open(UdpSocket.Options.defaults());
        ErrnoException e = assertThrows(ErrnoException.class,
                () -> UdpSocket.open(taken.localAddress(), UdpSocket.Options.defaults()));
        assertEquals(98, e.errno(), e.getMessage()); // EADDRINUSE
        assertTrue(e.getMessage().startsWith("bind(127.0.0.1:" + port(taken) + ")"), e.getMessage());
    }

    @Test
    void sendAndReceiveAllocateNothing() throws Exception {
        UdpSocket a = open(UdpSocket.Options.defaults());
        UdpSocket b = open(UdpSocket.Options.builder().gro(true).receiveBufferSize(4 << 20).build());
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long[] r = threads.submit(() -> {
            ByteBuffer single = pattern(SEGMENT, SEGMENT);
            ByteBuffer burst = pattern(BURST, SEGMENT);
            ByteBuffer dst = ByteBuffer.allocateDirect(65536);
            UdpSocket.Received info = new UdpSocket.Received();
            long[] out = new long[2];
            for (int round = 0; round < 2; round++) {
                long bytes = mx.getCurrentThreadAllocatedBytes();
                int datagrams = 0;
                for (int i = 0; i < 5_000; i++) {
                    single.rewind();
                    a.send(single, LOOPBACK, port(b));
                    burst.rewind();
                    a.sendSegmented(burst, SEGMENT, LOOPBACK, port(b));
                    int want = datagrams + 1 + BURST_DATAGRAMS;
                    while (datagrams < want) {
                        dst.clear();
                        b.receive(dst, info);
                        datagrams += info.segmentCount();
                    }
                }
                out[0] = mx.getCurrentThreadAllocatedBytes() - bytes; // the first round warms up
                out[1] = datagrams;
            }
            return out;
        }).get(120, TimeUnit.SECONDS);
        LOG.info("{} bytes allocated for 5000 sends, 5000 GSO sends and {} datagrams received", r[0], r[1]);
        assertTrue(r[0] < 50_000, r[0] + " bytes allocated in 10000 sends");
    }
}
