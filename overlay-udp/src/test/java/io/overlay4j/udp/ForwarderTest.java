package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static io.overlay4j.udp.testing.Packets.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.TrafficStats;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Two forwarders on loopback ({@code 127.0.0.2} and {@code 127.0.0.3}, same port), each behind an in-memory TUN:
 * node A owns {@code 10.5.1.0/24}, node B {@code 10.5.2.0/24}, network {@code 10.5.0.0/16}, MTU 1472.
 */
class ForwarderTest {
    private static final AtomicInteger RUN = new AtomicInteger();
    private static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("10.5.0.0/16");
    private static final Ipv4Prefix SUBNET_A = Ipv4Prefix.parse("10.5.1.0/24");
    private static final Ipv4Prefix SUBNET_B = Ipv4Prefix.parse("10.5.2.0/24");
    private static final int MTU = 1472;
    private static final String FLANNEL_ICMP = "45000038 00000000 08019cba 0a050100 0a050102 0300a09f 00000000 "
            + "45000030 12344000 40111379 0a050102 0a090001 14151617 18191a1b";

    private final List<Node> nodes = new ArrayList<>();
    private Node a;
    private Node b;
    private int port;

    /** One node: TUN, socket, forwarder, and what it reported. */
    private static final class Node {
        final String name;
        final InMemoryTunDevice tun;
        final DatagramChannel channel;
        final RecordingAllocator allocator = new RecordingAllocator();
        final List<Throwable> errors = new CopyOnWriteArrayList<>();
        Forwarder forwarder;

        Node(String name, DatagramChannel channel) {
            this.name = name;
            this.tun = new InMemoryTunDevice(name, MTU);
            this.channel = channel;
        }

        Forwarder.Builder builder(Ipv4Prefix own, int port) {
            return Forwarder.builder()
                    .tun(tun)
                    .channel(channel)
                    .port(port)
                    .ownSubnet(own)
                    .network(NETWORK)
                    .allocator(allocator)
                    .errorHandler(errors::add)
                    .ownsTun(true)
                    .ownsChannel(true);
        }

        List<Thread> threads() {
            List<Thread> found = new ArrayList<>();
            for (Thread t : Thread.getAllStackTraces().keySet()) {
                if (t.getName().equals("overlay4j-egress-" + name) || t.getName().equals("overlay4j-ingress-" + name)) {
                    found.add(t);
                }
            }
            return found;
        }
    }

    private static Lease lease(Ipv4Prefix subnet, int publicIp) {
        return new Lease(subnet, LeaseAttributes.udp(Ipv4Prefix.fromInt(publicIp)), Instant.now().plusSeconds(3600));
    }

    private static DatagramChannel open(String host, int port) throws IOException {
        DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET);
        ch.setOption(StandardSocketOptions.SO_RCVBUF, 1 << 20);
        try {
            ch.bind(new InetSocketAddress(host, port));
        } catch (IOException e) {
            ch.close();
            throw e;
        }
        return ch;
    }

    @BeforeEach
    void twoNodes() throws IOException {
        int run = RUN.incrementAndGet();
        for (int attempt = 0; ; attempt++) {
            DatagramChannel chA = open("127.0.0.2", 0);
            port = ((InetSocketAddress) chA.getLocalAddress()).getPort();
            try {
                DatagramChannel chB = open("127.0.0.3", port);
                a = new Node("fwdA" + run, chA);
                b = new Node("fwdB" + run, chB);
                break;
            } catch (IOException e) {
                chA.close();
                if (attempt > 20) {
                    throw e;
                }
            }
        }
        nodes.add(a);
        nodes.add(b);
        a.forwarder = a.builder(SUBNET_A, port)
                .peers(PeerTable.builder().put(lease(SUBNET_B, addr(127, 0, 0, 3)), port).build()).build();
        b.forwarder = b.builder(SUBNET_B, port)
                .peers(PeerTable.builder().put(lease(SUBNET_A, addr(127, 0, 0, 2)), port).build()).build();
    }

    @AfterEach
    void closeAndCheckCleanUp() throws InterruptedException {
        for (Node n : nodes) {
            if (n.forwarder != null) {
                n.forwarder.close();
                assertTrue(n.forwarder.awaitTermination(5, TimeUnit.SECONDS));
            }
            n.tun.close();
            try {
                n.channel.close();
            } catch (IOException ignored) {
                // closing for clean-up only
            }
        }
        for (Node n : nodes) {
            assertTrue(n.threads().isEmpty(), () -> n.name + " threads still alive");
            assertTrue(n.allocator.allReleased(0),
                    () -> n.name + " has unreleased buffers");
        }
    }

    private static void awaitStats(Forwarder f, Predicate<TrafficStats> condition, String what)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        TrafficStats s = f.stats();
        while (!condition.test(s)) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting for " + what + "; stats: " + s);
            }
            Thread.sleep(2);
            s = f.stats();
        }
    }

    private static byte[] take(InMemoryTunDevice tun) throws InterruptedException {
        byte[] p = tun.takeWritten(10, TimeUnit.SECONDS);
        assertNotNull(p, "nothing written to " + tun.name());
        return p;
    }

    @Test
    void exchangesThousandsOfPacketsByteExactInBothDirections() throws InterruptedException {
        a.forwarder.start();
        b.forwarder.start();
        Random random = new Random(7);
        int total = 3000;
        int batch = 50;
        long bytesAb = 0;
        long bytesBa = 0;
        for (int sent = 0; sent < total; sent += batch) {
            byte[][] ab = new byte[batch][];
            byte[][] ba = new byte[batch][];
            for (int i = 0; i < batch; i++) {
                int length = i == 0 ? MTU : i == 1 ? 20 : 20 + random.nextInt(MTU - 19);
                ab[i] = Packets.ipv4(addr(10, 5, 1, 2 + i), addr(10, 5, 2, 3 + i), 17, 64 - i % 60, length);
                ab[i][4] = (byte) sent;
                ab[i][5] = (byte) i;
                Packets.setHeaderChecksum(ab[i], 0);
                ba[i] = Packets.ipv4(addr(10, 5, 2, 3 + i), addr(10, 5, 1, 2 + i), 6, 3 + i, length);
                bytesAb += length;
                bytesBa += length;
                a.tun.inject(ab[i]);
                b.tun.inject(ba[i]);
            }
            for (int i = 0; i < batch; i++) {
                assertArrayEquals(Packets.withTtlDecremented(ab[i], 2), take(b.tun), "A→B packet " + (sent + i));
                assertArrayEquals(Packets.withTtlDecremented(ba[i], 2), take(a.tun), "B→A packet " + (sent + i));
            }
        }
        // A counter is bumped just after the send or TUN write it counts: wait for the last ones.
        awaitStats(a.forwarder, s -> s.egressPackets() == total && s.ingressPackets() == total, "A's counters");
        awaitStats(b.forwarder, s -> s.egressPackets() == total && s.ingressPackets() == total, "B's counters");
        TrafficStats sa = a.forwarder.stats();
        TrafficStats sb = b.forwarder.stats();
        assertEquals(total, sa.egressPackets());
        assertEquals(bytesAb, sa.egressBytes());
        assertEquals(total, sb.ingressPackets());
        assertEquals(bytesAb, sb.ingressBytes());
        assertEquals(total, sb.egressPackets());
        assertEquals(bytesBa, sa.ingressBytes());
        assertEquals(0, sa.totalDrops(), sa::toString);
        assertEquals(0, sb.totalDrops(), sb::toString);
        assertTrue(a.errors.isEmpty(), a.errors::toString);
        assertTrue(b.errors.isEmpty(), b.errors::toString);
    }

    @Test
    void unknownDestinationGetsFlannelsIcmpNetUnreachable() throws InterruptedException {
        a.forwarder.start();
        b.forwarder.start();
        byte[] offender = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 9, 0, 1), 17, 64, 48);
        a.tun.inject(offender);
        assertEquals(FLANNEL_ICMP, hex(take(a.tun)));
        // ICMP offenders get no reply; a good packet behind them proves they were processed.
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 9, 0, 1), 1, 64, 48));
        byte[] good = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 100);
        a.tun.inject(good);
        assertArrayEquals(Packets.withTtlDecremented(good, 2), take(b.tun));
        assertNull(a.tun.takeWritten(50, TimeUnit.MILLISECONDS), "no ICMP reply to ICMP");
        awaitStats(a.forwarder, st -> st.egressPackets() == 1, "the good packet counted");
        TrafficStats s = a.forwarder.stats();
        assertEquals(2, s.drops(DropReason.NO_ROUTE));
        assertEquals(1, s.icmpSent());
        assertEquals(1, s.egressPackets());
    }

    @Test
    void garbageIsCountedPerReasonAndForwardingGoesOn() throws Exception {
        b.forwarder.start();
        InetSocketAddress target = new InetSocketAddress("127.0.0.3", port);
        byte[] valid = Packets.ipv4(addr(10, 5, 1, 7), addr(10, 5, 2, 7), 17, 64, 60);
        byte[] ipv6 = new byte[40];
        ipv6[0] = 0x60;
        byte[] truncated = Packets.ipv4(addr(10, 5, 1, 7), addr(10, 5, 2, 7), 17, 64, 60);
        truncated[3] = 61;
        byte[] badHeader = valid.clone();
        badHeader[0] = 0x43;
        byte[] oversize = Packets.ipv4(addr(10, 5, 1, 7), addr(10, 5, 2, 7), 17, 64, 2000);
        byte[] huge = Packets.ipv4(addr(10, 5, 1, 7), addr(10, 5, 2, 7), 17, 64, 60000);
        byte[] expiring = Packets.ipv4(addr(10, 5, 1, 7), addr(10, 5, 2, 7), 17, 1, 60);
        byte[] foreign = Packets.ipv4(addr(192, 168, 1, 1), addr(10, 5, 2, 7), 17, 64, 60);
        try (DatagramChannel attacker = open("127.0.0.4", 0)) {
            for (byte[] p : new byte[][] {new byte[0], new byte[10], ipv6, truncated, badHeader, oversize, huge,
                    expiring, foreign, valid}) {
                attacker.send(ByteBuffer.wrap(p), target);
            }
        }
        assertArrayEquals(Packets.withTtlDecremented(valid, 1), take(b.tun));
        awaitStats(b.forwarder, s -> s.totalDrops() == 9 && s.ingressPackets() == 1, "9 drops and 1 packet");
        TrafficStats s = b.forwarder.stats();
        assertEquals(2, s.drops(DropReason.RUNT), s::toString);
        assertEquals(1, s.drops(DropReason.NOT_IPV4), s::toString);
        assertEquals(1, s.drops(DropReason.TRUNCATED), s::toString);
        assertEquals(1, s.drops(DropReason.BAD_HEADER), s::toString);
        assertEquals(2, s.drops(DropReason.OVERSIZE), s::toString);
        assertEquals(1, s.drops(DropReason.TTL_EXPIRED), s::toString);
        assertEquals(1, s.drops(DropReason.FOREIGN_SOURCE), s::toString);
        assertEquals(1, s.ingressPackets());
        assertEquals(60, s.ingressBytes());
        assertEquals(0, b.tun.writtenPending(), "nothing but the valid packet reached the TUN");
        assertTrue(b.errors.isEmpty(), b.errors::toString);
    }

    @Test
    void sourceCheckCanBeTurnedOff() throws Exception {
        b.forwarder.close();
        DatagramChannel ch = open("127.0.0.3", 0);
        Node c = new Node(b.name + "c", ch);
        nodes.add(c);
        c.forwarder = c.builder(SUBNET_B, port).sourceCheck(false).build();
        c.forwarder.start();
        byte[] foreign = Packets.ipv4(addr(192, 168, 1, 1), addr(10, 5, 2, 7), 17, 64, 60);
        try (DatagramChannel sender = open("127.0.0.4", 0)) {
            sender.send(ByteBuffer.wrap(foreign), ch.getLocalAddress());
        }
        assertArrayEquals(Packets.withTtlDecremented(foreign, 1), take(c.tun));
    }

    @Test
    void egressDropsAreCounted() throws InterruptedException {
        a.forwarder.start();
        byte[] ipv6 = new byte[48];
        ipv6[0] = 0x60;
        a.tun.inject(ipv6);
        a.tun.inject(new byte[19]);
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, MTU + 1));
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 1, 40));
        awaitStats(a.forwarder, s -> s.totalDrops() == 4, "4 drops");
        TrafficStats s = a.forwarder.stats();
        assertEquals(1, s.drops(DropReason.NOT_IPV4));
        assertEquals(1, s.drops(DropReason.RUNT));
        assertEquals(1, s.drops(DropReason.OVERSIZE));
        assertEquals(1, s.drops(DropReason.TTL_EXPIRED));
        assertEquals(0, s.egressPackets());
    }

    @Test
    void failedSendsAndTunWritesAreCountedAndReported() throws Exception {
        a.forwarder.start();
        b.forwarder.start();
        // 127.255.255.255 is loopback's broadcast address: without SO_BROADCAST the kernel refuses (EACCES).
        a.forwarder.peers(a.forwarder.peers().toBuilder()
                .put(lease(Ipv4Prefix.parse("10.5.3.0/24"), addr(127, 255, 255, 255)), port).build());
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 3, 9), 17, 64, 40));
        awaitStats(a.forwarder, s -> s.drops(DropReason.SEND_FAILED) == 1, "a send failure");
        assertEquals(1, a.errors.size(), a.errors::toString);

        b.tun.failWrites(new IOException("test: EIO"));
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 40));
        awaitStats(b.forwarder, s -> s.drops(DropReason.TUN_WRITE_FAILED) == 1, "a TUN write failure");
        assertEquals("test: EIO", b.errors.get(0).getMessage());
        b.tun.failWrites(null);
        byte[] good = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 41);
        a.tun.inject(good);
        assertArrayEquals(Packets.withTtlDecremented(good, 2), take(b.tun));
    }

    @Test
    void peerTableSwapsTakeEffect() throws Exception {
        a.forwarder.peers(PeerTable.empty());
        a.forwarder.start();
        b.forwarder.start();
        byte[] p = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 6, 64, 40);
        a.tun.inject(p);
        take(a.tun); // ICMP net-unreachable
        a.forwarder.peersChanged(List.of(LeaseEvent.added(lease(SUBNET_B, addr(127, 0, 0, 3)))));
        a.tun.inject(p);
        assertArrayEquals(Packets.withTtlDecremented(p, 2), take(b.tun));
        a.forwarder.resetPeers(List.of());
        a.tun.inject(p);
        take(a.tun);
        awaitStats(a.forwarder, st -> st.egressPackets() == 1 && st.icmpSent() == 2, "1 sent, 2 ICMP");
        assertEquals(2, a.forwarder.stats().drops(DropReason.NO_ROUTE));
        assertEquals(1, a.forwarder.stats().egressPackets());
    }

    @Test
    void closeStopsBothThreadsQuicklyAndReleasesBuffers() throws Exception {
        a.forwarder.start();
        b.forwarder.start();
        byte[] p = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 6, 64, 40);
        a.tun.inject(p);
        take(b.tun);
        awaitStats(a.forwarder, st -> st.egressPackets() == 1, "the packet counted");
        assertEquals(2, a.threads().size());
        long start = System.nanoTime();
        a.forwarder.close();
        b.forwarder.close();
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(millis < 2000, "close took " + millis + " ms");
        assertTrue(a.threads().isEmpty());
        assertTrue(b.threads().isEmpty());
        assertFalse(a.tun.isOpen(), "owned TUN closed");
        assertFalse(a.channel.isOpen(), "owned channel closed");
        assertTrue(a.allocator.allReleased(3), "egress packet + ICMP buffers and the ingress buffer released");
        assertTrue(b.allocator.allReleased(3));
        assertFalse(a.forwarder.isRunning());
        a.forwarder.close();
        assertEquals(1, a.forwarder.stats().egressPackets(), "stats survive close");
        assertThrows(IllegalStateException.class, a.forwarder::start);
    }

    @Test
    void closeWithoutOwnershipLeavesTunAndChannelToTheirOwner() throws Exception {
        b.forwarder.close();
        Node c = new Node(b.name + "n", open("127.0.0.3", 0));
        nodes.add(c);
        c.forwarder = c.builder(SUBNET_B, port).ownsTun(false).ownsChannel(false).build();
        c.forwarder.start();
        // Both threads are in their blocking calls once a packet has gone each way.
        byte[] in = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 6, 64, 40);
        try (DatagramChannel sender = open("127.0.0.4", 0)) {
            sender.send(ByteBuffer.wrap(in), c.channel.getLocalAddress());
        }
        take(c.tun);
        c.tun.inject(Packets.ipv4(addr(10, 5, 2, 9), addr(10, 9, 0, 1), 6, 64, 40));
        take(c.tun); // ICMP net-unreachable from the egress thread
        long start = System.nanoTime();
        c.forwarder.close();
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(2), "close woke the ingress thread");
        assertTrue(c.channel.isOpen(), "the channel is the caller's");
        assertTrue(c.tun.isOpen(), "the TUN is the caller's");
        for (Thread t : c.threads()) {
            if (t.getName().startsWith("overlay4j-ingress")) {
                throw new AssertionError("ingress thread still running after close");
            }
        }
        c.tun.close();
        assertTrue(c.forwarder.awaitTermination(5, TimeUnit.SECONDS));
        assertTrue(c.threads().isEmpty());
        assertTrue(c.allocator.allReleased(3));
    }

    @Test
    void builderChecks() throws IOException {
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().tun(a.tun).build());
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().port(0));
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().mtu(67));
        a.channel.configureBlocking(false);
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().tun(a.tun).channel(a.channel).build());
        a.channel.configureBlocking(true);
        try (DatagramChannel unbound = DatagramChannel.open(StandardProtocolFamily.INET)) {
            assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().tun(a.tun).channel(unbound).build());
        }
        Forwarder refused = Forwarder.builder().tun(a.tun).channel(a.channel).threadFactory(r -> {
            throw new IllegalStateException("test: no threads");
        }).build();
        assertThrows(IllegalStateException.class, refused::start);
        assertFalse(refused.isRunning());
        assertTrue(a.tun.isOpen(), "not owned by default");
        Forwarder f = Forwarder.builder().tun(a.tun).channel(a.channel).build();
        assertEquals(MTU, f.mtu());
        assertEquals(8285, f.port());
        f.close();
        assertTrue(a.tun.isOpen(), "not owned by default");
    }
}
