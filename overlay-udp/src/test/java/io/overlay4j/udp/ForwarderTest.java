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
import io.overlay4j.PeerStats;
import io.overlay4j.TrafficStats;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.time.Duration;
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
 * Two forwarders on loopback ({@code 127.0.0.2} and {@code 127.0.0.3}, same port, real {@link UdpSocket}s), each
 * behind an in-memory TUN: node A owns {@code 10.5.1.0/24}, node B {@code 10.5.2.0/24}, network {@code 10.5.0.0/16},
 * MTU 1472. A third lease, C ({@code 10.5.3.0/24} at {@code 127.0.0.4}, same port), is a plain datagram channel the
 * tests send from: an admitted sender.
 */
class ForwarderTest {
    private static final AtomicInteger RUN = new AtomicInteger();
    private static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("10.5.0.0/16");
    private static final Ipv4Prefix SUBNET_A = Ipv4Prefix.parse("10.5.1.0/24");
    private static final Ipv4Prefix SUBNET_B = Ipv4Prefix.parse("10.5.2.0/24");
    private static final Ipv4Prefix SUBNET_C = Ipv4Prefix.parse("10.5.3.0/24");
    private static final int MTU = 1472;
    private static final String FLANNEL_ICMP = "45000038 00000000 08019cba 0a050100 0a050102 0300a09f 00000000 "
            + "45000030 12344000 40111379 0a050102 0a090001 14151617 18191a1b";

    private final List<Node> nodes = new ArrayList<>();
    private Node a;
    private Node b;
    private DatagramChannel c;
    private int port;

    /** One node: TUN, socket, forwarder, and what it reported. */
    private static final class Node {
        final String name;
        final InMemoryTunDevice tun;
        final UdpSocket socket;
        final List<Throwable> errors = new CopyOnWriteArrayList<>();
        Forwarder forwarder;

        Node(String name, UdpSocket socket) {
            this.name = name;
            this.tun = new InMemoryTunDevice(name, MTU);
            this.socket = socket;
        }

        Forwarder.Builder builder(Ipv4Prefix own) {
            return Forwarder.builder()
                    .tun(tun)
                    .socket(socket)
                    .port(socket.localAddress().getPort())
                    .ownSubnet(own)
                    .network(NETWORK)
                    .errorHandler(errors::add)
                    .ownsTun(true)
                    .ownsSocket(true);
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

    static Lease lease(Ipv4Prefix subnet, int publicIp) {
        return new Lease(subnet, LeaseAttributes.udp(Ipv4Prefix.fromInt(publicIp)), Instant.now().plusSeconds(3600));
    }

    static UdpSocket open(String host, int port) throws IOException {
        return UdpSocket.open(new InetSocketAddress(host, port), UdpSocket.Options.builder()
                .receiveBufferSize(1 << 20).build());
    }

    @BeforeEach
    void threeLeases() throws IOException {
        int run = RUN.incrementAndGet();
        for (int attempt = 0; ; attempt++) {
            UdpSocket sa = open("127.0.0.2", 0);
            port = sa.localAddress().getPort();
            try {
                UdpSocket sb = open("127.0.0.3", port);
                try {
                    c = DatagramChannel.open(StandardProtocolFamily.INET).bind(new InetSocketAddress("127.0.0.4", port));
                } catch (IOException e) {
                    sb.close();
                    throw e;
                }
                a = new Node("fwdA" + run, sa);
                b = new Node("fwdB" + run, sb);
                break;
            } catch (IOException e) {
                sa.close();
                if (attempt > 20) {
                    throw e;
                }
            }
        }
        nodes.add(a);
        nodes.add(b);
        a.forwarder = a.builder(SUBNET_A).peers(PeerTable.builder()
                .put(lease(SUBNET_B, addr(127, 0, 0, 3)), port)
                .put(lease(SUBNET_C, addr(127, 0, 0, 4)), port).build()).build();
        b.forwarder = b.builder(SUBNET_B).peers(PeerTable.builder()
                .put(lease(SUBNET_A, addr(127, 0, 0, 2)), port)
                .put(lease(SUBNET_C, addr(127, 0, 0, 4)), port).build()).build();
    }

    @AfterEach
    void closeAndCheckCleanUp() throws Exception {
        for (Node n : nodes) {
            if (n.forwarder != null) {
                n.forwarder.close();
                n.tun.close();
                n.socket.close();
                assertTrue(n.forwarder.awaitTermination(5, TimeUnit.SECONDS));
            }
        }
        c.close();
        for (Node n : nodes) {
            assertTrue(n.threads().isEmpty(), () -> n.name + " threads still alive");
        }
    }

    static void awaitStats(Forwarder f, Predicate<TrafficStats> condition, String what) throws InterruptedException {
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

    static byte[] take(InMemoryTunDevice tun) throws InterruptedException {
        byte[] p = tun.takeWritten(10, TimeUnit.SECONDS);
        assertNotNull(p, "nothing written to " + tun.name());
        return p;
    }

    private void sendFromC(byte[] datagram, String host) throws IOException {
        c.send(ByteBuffer.wrap(datagram), new InetSocketAddress(host, port));
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
        assertEquals(bytesAb, sa.egressBytes());
        assertEquals(bytesAb, sb.ingressBytes());
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
    }

    /** flannel looks up before it decrements: a TTL-1 packet to nowhere is "no route" with an ICMP answer. */
    @Test
    void ttlOneToAnUnknownDestinationIsNoRouteWithIcmp() throws InterruptedException {
        a.forwarder.start();
        byte[] offender = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 9, 0, 1), 17, 1, 48);
        a.tun.inject(offender);
        byte[] icmp = take(a.tun);
        assertEquals(3, icmp[20], "destination unreachable");
        assertEquals(0, icmp[21], "net unreachable");
        assertEquals(1, icmp[28 + 8], "the offender is quoted with the TTL it arrived with");
        // The same packet to a leased destination runs out of TTL instead.
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 1, 48));
        awaitStats(a.forwarder, s -> s.drops(DropReason.TTL_EXPIRED) == 1, "TTL expiry");
        TrafficStats s = a.forwarder.stats();
        assertEquals(1, s.drops(DropReason.NO_ROUTE), s::toString);
        assertEquals(1, s.icmpSent());
        assertEquals(2, s.totalDrops(), s::toString);
    }

    @Test
    void garbageFromALeaseholderIsCountedPerReasonAndForwardingGoesOn() throws Exception {
        b.forwarder.start();
        byte[] valid = Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 17, 64, 60);
        byte[] ipv6 = new byte[40];
        ipv6[0] = 0x60;
        byte[] truncated = valid.clone();
        truncated[3] = 61;
        byte[] badHeader = valid.clone();
        badHeader[0] = 0x43;
        byte[] oversize = Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 17, 64, 2000);
        byte[] huge = Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 17, 64, 60000);
        byte[] expiring = Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 17, 1, 60);
        for (byte[] p : new byte[][] {new byte[0], new byte[10], ipv6, truncated, badHeader, oversize, huge,
            expiring, valid}) {
            sendFromC(p, "127.0.0.3");
        }
        assertArrayEquals(Packets.withTtlDecremented(valid, 1), take(b.tun));
        awaitStats(b.forwarder, s -> s.totalDrops() == 8 && s.ingressPackets() == 1, "8 drops and 1 packet");
        TrafficStats s = b.forwarder.stats();
        assertEquals(2, s.drops(DropReason.RUNT), s::toString);
        assertEquals(1, s.drops(DropReason.NOT_IPV4), s::toString);
        assertEquals(1, s.drops(DropReason.TRUNCATED), s::toString);
        assertEquals(1, s.drops(DropReason.BAD_HEADER), s::toString);
        assertEquals(2, s.drops(DropReason.OVERSIZE), s::toString);
        assertEquals(1, s.drops(DropReason.TTL_EXPIRED), s::toString);
        assertEquals(60, s.ingressBytes());
        assertEquals(0, b.tun.writtenPending(), "nothing but the valid packet reached the TUN");
        assertTrue(b.errors.isEmpty(), b.errors::toString);
    }

    /** Issue 12: only leaseholders, only their own sources, only to our subnet, and no answer to anything else. */
    @Test
    void admissionStopsStrangersSpoofersAndRelaysWithoutAnswering() throws Exception {
        b.forwarder.start();
        byte[] fromC = Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 6, 64, 60);
        try (DatagramChannel stranger = DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("127.0.0.5", port));
             DatagramChannel otherPort = DatagramChannel.open(StandardProtocolFamily.INET)
                     .bind(new InetSocketAddress("127.0.0.4", 0))) {
            InetSocketAddress target = new InetSocketAddress("127.0.0.3", port);
            stranger.send(ByteBuffer.wrap(fromC), target);
            otherPort.send(ByteBuffer.wrap(fromC), target);
            stranger.send(ByteBuffer.wrap(new byte[7]), target);
            // C forging B's own containers, A's containers, and a source outside the network.
            sendFromC(Packets.ipv4(addr(10, 5, 2, 9), addr(10, 5, 2, 7), 6, 64, 60), "127.0.0.3");
            sendFromC(Packets.ipv4(addr(10, 5, 1, 9), addr(10, 5, 2, 7), 6, 64, 60), "127.0.0.3");
            sendFromC(Packets.ipv4(addr(192, 168, 1, 1), addr(10, 5, 2, 7), 6, 64, 60), "127.0.0.3");
            // C using B as a relay: to A's subnet, to B's and C's underlay addresses, outside everything.
            sendFromC(Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 1, 7), 6, 64, 60), "127.0.0.3");
            sendFromC(Packets.ipv4(addr(10, 5, 3, 7), addr(127, 0, 0, 3), 6, 64, 60), "127.0.0.3");
            sendFromC(Packets.ipv4(addr(10, 5, 3, 7), addr(127, 0, 0, 4), 6, 64, 60), "127.0.0.3");
            sendFromC(Packets.ipv4(addr(10, 5, 3, 7), addr(8, 8, 8, 8), 6, 64, 60), "127.0.0.3");
            sendFromC(fromC, "127.0.0.3");
            assertArrayEquals(Packets.withTtlDecremented(fromC, 1), take(b.tun));
            // The TUN write comes before its count: wait for both.
            awaitStats(b.forwarder, s -> s.totalDrops() == 10 && s.ingressPackets() == 1, "10 drops, 1 packet");
            TrafficStats s = b.forwarder.stats();
            assertEquals(3, s.drops(DropReason.UNKNOWN_SENDER), s::toString);
            assertEquals(2, s.drops(DropReason.SPOOFED_SOURCE), s::toString);
            assertEquals(1, s.drops(DropReason.FOREIGN_SOURCE), s::toString);
            assertEquals(4, s.drops(DropReason.FOREIGN_DESTINATION), s::toString);
            assertEquals(1, s.ingressPackets());
            assertEquals(0, s.icmpSent());
            assertEquals(0, b.tun.writtenPending(), "nothing else reached the TUN");
            stranger.configureBlocking(false);
            c.configureBlocking(false);
            assertNull(stranger.receive(ByteBuffer.allocate(2048)), "the stranger got an answer");
            assertNull(c.receive(ByteBuffer.allocate(2048)), "the spoofer got an answer");
        }
    }

    /** The NAT relaxation: any sender address, but still a leased source and our own destination. */
    @Test
    void admitAnySenderAddressStillChecksSourcesAndDestinations() throws Exception {
        b.forwarder.close();
        Node n = new Node(b.name + "n", open("127.0.0.3", 0));
        nodes.add(n);
        n.forwarder = n.builder(SUBNET_B).admitAnySenderAddress(true)
                .peers(PeerTable.builder().put(lease(SUBNET_C, addr(127, 0, 0, 4)), port).build()).build();
        n.forwarder.start();
        byte[] natted = Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 6, 64, 60);
        try (DatagramChannel behindNat = DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("127.0.0.6", 0))) {
            InetSocketAddress target = n.socket.localAddress();
            behindNat.send(ByteBuffer.wrap(Packets.ipv4(addr(10, 5, 9, 7), addr(10, 5, 2, 7), 6, 64, 60)), target);
            behindNat.send(ByteBuffer.wrap(Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 1, 7), 6, 64, 60)), target);
            behindNat.send(ByteBuffer.wrap(natted), target);
        }
        assertArrayEquals(Packets.withTtlDecremented(natted, 1), take(n.tun));
        awaitStats(n.forwarder, s -> s.totalDrops() == 2, "2 drops");
        TrafficStats s = n.forwarder.stats();
        assertEquals(1, s.drops(DropReason.SPOOFED_SOURCE), s::toString);
        assertEquals(1, s.drops(DropReason.FOREIGN_DESTINATION), s::toString);
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
                .put(lease(Ipv4Prefix.parse("10.5.4.0/24"), addr(127, 255, 255, 255)), port).build());
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 4, 9), 17, 64, 40));
        awaitStats(a.forwarder, s -> s.drops(DropReason.SEND_FAILED) == 1, "a send failure");
        assertEquals(1, a.errors.size(), a.errors::toString);
        assertEquals(0, a.forwarder.stats().egressPackets());

        b.tun.failWrites(new IOException("test: EIO"));
        a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 40));
        awaitStats(b.forwarder, s -> s.drops(DropReason.TUN_WRITE_FAILED) == 1, "a TUN write failure");
        assertEquals("test: EIO", b.errors.get(0).getMessage());
        assertEquals(0, b.forwarder.stats().ingressPackets(), "a failed write is not forwarded");
        b.tun.failWrites(null);
        byte[] good = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 41);
        a.tun.inject(good);
        assertArrayEquals(Packets.withTtlDecremented(good, 2), take(b.tun));
    }

    /**
     * Per-peer counters, both directions, exact while the peer tables are rebuilt under the traffic (renewals, an
     * attribute change, resyncs): the counters belong to the subnet, not to one table's peer object. Datagrams that
     * fail admission count for no peer.
     */
    @Test
    void perPeerCountersAreExactThroughTableRebuildsUnderTraffic() throws Exception {
        a.forwarder.start();
        b.forwarder.start();
        Instant before = Instant.now().truncatedTo(java.time.temporal.ChronoUnit.MILLIS);
        AtomicInteger stop = new AtomicInteger();
        Thread churn = new Thread(() -> {
            int i = 0;
            while (stop.get() == 0) {
                Lease bLease = lease(SUBNET_B, addr(127, 0, 0, 3));
                Lease cLease = i % 2 == 0 ? lease(SUBNET_C, addr(127, 0, 0, 4))
                        : lease(SUBNET_C, addr(127, 0, 0, 14)); // C's address changes back and forth
                if (i % 3 == 0) {
                    a.forwarder.resetPeers(List.of(bLease, cLease));
                } else {
                    a.forwarder.peersChanged(List.of(LeaseEvent.added(bLease), LeaseEvent.added(cLease)));
                }
                b.forwarder.resetPeers(List.of(lease(SUBNET_A, addr(127, 0, 0, 2)), lease(SUBNET_C,
                        addr(127, 0, 0, 4))));
                i++;
                Thread.onSpinWait();
            }
        }, "churn");
        churn.start();
        int total = 2000;
        long bytesAb = 0;
        long bytesBa = 0;
        try {
            for (int i = 0; i < total; i++) {
                int length = 40 + i % 1000;
                a.tun.inject(Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 3), 17, 64, length));
                bytesAb += length;
                if (i % 2 == 0) {
                    b.tun.inject(Packets.ipv4(addr(10, 5, 2, 3), addr(10, 5, 1, 2), 17, 64, length + 1));
                    bytesBa += length + 1;
                }
                if (i % 100 == 99) {
                    // Paced, so loopback drops nothing: every packet sent must also arrive. Each sender must first
                    // have sent all it was given: a sender that lagged would else send many batches at once, more
                    // than a receiver starved of CPU finds room for in its socket (the kernel's RcvbufErrors).
                    long sentAb = i + 1;
                    long sentBa = (i + 1) / 2;
                    awaitStats(a.forwarder, st -> st.egressPackets() == sentAb, "A sent all given");
                    awaitStats(b.forwarder, st -> st.egressPackets() == sentBa, "B sent all given");
                    awaitStats(b.forwarder, st -> st.ingressPackets() == sentAb, "B caught up");
                    awaitStats(a.forwarder, st -> st.ingressPackets() == sentBa, "A caught up");
                }
            }
            awaitStats(b.forwarder, st -> st.ingressPackets() == total, "B received all");
            awaitStats(a.forwarder, st -> st.ingressPackets() == total / 2, "A received all");
        } finally {
            stop.set(1);
            churn.join();
        }
        // C: one admitted datagram and one spoofed (A's source): only the first counts for C.
        sendFromC(Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 17, 64, 77), "127.0.0.3");
        sendFromC(Packets.ipv4(addr(10, 5, 1, 7), addr(10, 5, 2, 7), 17, 64, 78), "127.0.0.3");
        awaitStats(b.forwarder, st -> st.ingressPackets() == total + 1 && st.totalDrops() == 1, "C's two");
        Instant after = Instant.now();

        PeerStats aToB = peer(a.forwarder, SUBNET_B);
        assertEquals(total, aToB.egressPackets(), aToB::toString);
        assertEquals(bytesAb, aToB.egressBytes());
        assertEquals(total / 2, aToB.ingressPackets());
        assertEquals(bytesBa, aToB.ingressBytes());
        assertFalse(aToB.lastSeen().isBefore(before), aToB::toString);
        assertFalse(aToB.lastSeen().isAfter(after), aToB::toString);
        assertEquals(new PeerStats(SUBNET_C, 0, 0, 0, 0, null), peer(a.forwarder, SUBNET_C));
        PeerStats bFromA = peer(b.forwarder, SUBNET_A);
        assertEquals(new PeerStats(SUBNET_A, total / 2, bytesBa, total, bytesAb, bFromA.lastSeen()), bFromA);
        PeerStats bFromC = peer(b.forwarder, SUBNET_C);
        assertEquals(1, bFromC.ingressPackets(), bFromC::toString);
        assertEquals(77, bFromC.ingressBytes());
        assertNotNull(bFromC.lastSeen());
        assertEquals(List.of(SUBNET_A, SUBNET_C), b.forwarder.peerStats().stream().map(PeerStats::subnet).toList());

        // Leaving and coming back restarts a peer's counters.
        a.forwarder.peersChanged(List.of(LeaseEvent.removed(lease(SUBNET_B, addr(127, 0, 0, 3)))));
        a.forwarder.peersChanged(List.of(LeaseEvent.added(lease(SUBNET_B, addr(127, 0, 0, 3)))));
        assertEquals(new PeerStats(SUBNET_B, 0, 0, 0, 0, null), peer(a.forwarder, SUBNET_B));
    }

    private static PeerStats peer(Forwarder f, Ipv4Prefix subnet) {
        for (PeerStats p : f.peerStats()) {
            if (p.subnet().equals(subnet)) {
                return p;
            }
        }
        throw new AssertionError("no peer " + subnet + " in " + f.peerStats());
    }

    @Test
    void lastSeenIsTheTimeOfTheLatestDatagram() throws Exception {
        a.forwarder.start();
        b.forwarder.start();
        byte[] ba = Packets.ipv4(addr(10, 5, 2, 3), addr(10, 5, 1, 2), 17, 64, 60);
        b.tun.inject(ba);
        take(a.tun);
        Instant first = peer(a.forwarder, SUBNET_B).lastSeen();
        assertNotNull(first);
        Thread.sleep(50);
        Instant before = Instant.now().truncatedTo(java.time.temporal.ChronoUnit.MILLIS);
        b.tun.inject(ba);
        take(a.tun);
        Instant second = peer(a.forwarder, SUBNET_B).lastSeen();
        assertFalse(second.isBefore(before), "last seen " + second + ", the first datagram at " + first
                + ", the second after " + before);
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
        // B no longer knows A: A's packets are now from an unknown sender.
        b.forwarder.resetPeers(List.of());
        byte[] back = Packets.ipv4(addr(10, 5, 2, 9), addr(10, 5, 1, 2), 6, 64, 40);
        b.tun.inject(back);
        take(b.tun); // ICMP net-unreachable at B
        a.tun.inject(p);
        awaitStats(b.forwarder, st -> st.drops(DropReason.UNKNOWN_SENDER) == 1, "A unknown to B");
        a.forwarder.resetPeers(List.of());
        a.tun.inject(p);
        take(a.tun);
        awaitStats(a.forwarder, st -> st.egressPackets() == 2 && st.icmpSent() == 2, "2 sent, 2 ICMP");
        assertEquals(2, a.forwarder.stats().drops(DropReason.NO_ROUTE));
    }

    @Test
    void closeStopsBothThreadsQuickly() throws Exception {
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
        assertFalse(a.socket.isOpen(), "owned socket closed");
        assertFalse(a.forwarder.isRunning());
        a.forwarder.close();
        assertEquals(1, a.forwarder.stats().egressPackets(), "stats survive close");
        assertThrows(IllegalStateException.class, a.forwarder::start);
    }

    /** Spinning is bounded: threads block once the spin time after the last packet is over, and close ends them. */
    @Test
    void spinningThreadsBlockWhenIdleAndStopPromptlyOnClose() throws Exception {
        PeerTable peersA = a.forwarder.peers();
        PeerTable peersB = b.forwarder.peers();
        a.forwarder = a.builder(SUBNET_A).peers(peersA).spin(Duration.ofMillis(30)).build();
        b.forwarder = b.builder(SUBNET_B).peers(peersB).spin(Duration.ofMillis(30)).build();
        a.forwarder.start();
        b.forwarder.start();
        byte[] p = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 100);
        for (int i = 0; i < 20; i++) {
            a.tun.inject(p);
            assertArrayEquals(Packets.withTtlDecremented(p, 2), take(b.tun));
        }
        // Idle: after the spin time, no thread of either forwarder may keep a CPU busy.
        Thread.sleep(200);
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        List<Thread> threads = new ArrayList<>(a.threads());
        threads.addAll(b.threads());
        assertEquals(4, threads.size());
        long before = 0;
        for (Thread t : threads) {
            before += mx.getThreadCpuTime(t.getId());
        }
        Thread.sleep(500);
        long after = 0;
        for (Thread t : threads) {
            after += mx.getThreadCpuTime(t.getId());
        }
        long idleMillis = TimeUnit.NANOSECONDS.toMillis(after - before);
        assertTrue(idleMillis < 100, "4 idle forwarder threads used " + idleMillis + " ms of CPU in 500 ms");
        // Close while the threads spin right after a packet.
        a.tun.inject(p);
        take(b.tun);
        long start = System.nanoTime();
        a.forwarder.close();
        b.forwarder.close();
        long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(millis < 2000, "close took " + millis + " ms");
        assertTrue(a.threads().isEmpty() && b.threads().isEmpty(), "threads still alive after close");
    }

    /** A TUN that cannot wait without reading keeps the blocking loops, one thread per direction. */
    @Test
    void devicesThatCannotPollKeepTheBlockingLoops() throws Exception {
        a.tun.pollable(false);
        b.tun.pollable(false);
        // The loops are chosen when a forwarder is built.
        a.forwarder = a.builder(SUBNET_A).peers(a.forwarder.peers()).build();
        b.forwarder = b.builder(SUBNET_B).peers(b.forwarder.peers()).build();
        a.forwarder.start();
        b.forwarder.start();
        for (int i = 0; i < 50; i++) {
            byte[] ab = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 60 + i);
            byte[] ba = Packets.ipv4(addr(10, 5, 2, 9), addr(10, 5, 1, 2), 6, 64, 60 + i);
            a.tun.inject(ab);
            b.tun.inject(ba);
            assertArrayEquals(Packets.withTtlDecremented(ab, 2), take(b.tun), "A→B " + i);
            assertArrayEquals(Packets.withTtlDecremented(ba, 2), take(a.tun), "B→A " + i);
        }
        awaitStats(a.forwarder, s -> s.egressPackets() == 50 && s.ingressPackets() == 50, "A's counters");
    }

    @Test
    void closeWithoutOwnershipLeavesTunAndSocketToTheirOwner() throws Exception {
        b.forwarder.close();
        Node n = new Node(b.name + "n", open("127.0.0.3", 0));
        nodes.add(n);
        n.forwarder = n.builder(SUBNET_B).ownsTun(false).ownsSocket(false)
                .peers(PeerTable.builder().put(lease(SUBNET_C, addr(127, 0, 0, 4)), port).build()).build();
        n.forwarder.start();
        // Both threads are in their blocking calls once a packet has gone each way.
        byte[] in = Packets.ipv4(addr(10, 5, 3, 2), addr(10, 5, 2, 9), 6, 64, 40);
        c.send(ByteBuffer.wrap(in), n.socket.localAddress());
        take(n.tun);
        n.tun.inject(Packets.ipv4(addr(10, 5, 2, 9), addr(10, 9, 0, 1), 6, 64, 40));
        take(n.tun); // ICMP net-unreachable from the egress thread
        long start = System.nanoTime();
        n.forwarder.close();
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(2), "close woke the ingress thread");
        assertTrue(n.socket.isOpen(), "the socket is the caller's");
        assertTrue(n.tun.isOpen(), "the TUN is the caller's");
        for (Thread t : n.threads()) {
            if (t.getName().startsWith("overlay4j-ingress")) {
                throw new AssertionError("ingress thread still running after close");
            }
        }
        n.tun.close();
        assertTrue(n.forwarder.awaitTermination(5, TimeUnit.SECONDS));
        assertTrue(n.threads().isEmpty());
    }

    @Test
    void vxlanEncapsulatedTrafficFlowsBetweenTwoForwarders() throws Exception {
        a.forwarder.close();
        b.forwarder.close();
        VxlanEncapsulator vxA = VxlanEncapsulator.of(7, "02:00:00:00:00:0a");
        VxlanEncapsulator vxB = VxlanEncapsulator.of(7, "02:00:00:00:00:0b");
        Node va = new Node(a.name + "v", open("127.0.0.2", 0));
        int vport = va.socket.localAddress().getPort();
        Node vb = new Node(b.name + "v", open("127.0.0.3", vport));
        nodes.add(va);
        nodes.add(vb);
        va.forwarder = va.builder(SUBNET_A).encapsulator(vxA)
                .peers(PeerTable.builder(vxA).put(vxlanLease(SUBNET_B, addr(127, 0, 0, 3), 7, vxB.vtepMac()), vport)
                        .put(vxlanLease(SUBNET_C, addr(127, 0, 0, 4), 7, "01:00:00:00:00:01"), vport).build())
                .build();
        vb.forwarder = vb.builder(SUBNET_B).encapsulator(vxB).build();
        vb.forwarder.resetPeers(List.of(vxlanLease(SUBNET_A, addr(127, 0, 0, 2), 7, vxA.vtepMac())));
        assertEquals(1, va.forwarder.peers().skippedLeases().size(), "multicast VtepMAC skipped");
        va.forwarder.start();
        vb.forwarder.start();
        byte[] p = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 6, 64, MTU);
        va.tun.inject(p);
        assertArrayEquals(p, take(vb.tun), "no TTL change through VXLAN");
        byte[] back = Packets.ipv4(addr(10, 5, 2, 9), addr(10, 5, 1, 2), 17, 1, 100);
        vb.tun.inject(back);
        assertArrayEquals(back, take(va.tun), "TTL 1 passes: the kernels route, not the tunnel");
        awaitStats(va.forwarder, s -> s.ingressPackets() == 1 && s.egressPackets() == 1, "A's counters");
        assertEquals(0, va.forwarder.stats().totalDrops());
        // Counted just after the TUN write that take() saw: wait for it.
        awaitStats(vb.forwarder, s -> s.ingressPackets() == 1 && s.ingressBytes() == MTU, "B's counters");
    }

    static Lease vxlanLease(Ipv4Prefix subnet, int publicIp, int vni, String mac) {
        return new Lease(subnet, new LeaseAttributes(Ipv4Prefix.fromInt(publicIp), null, "vxlan",
                "{\"VNI\":" + vni + ",\"VtepMAC\":\"" + mac + "\"}"), Instant.now().plusSeconds(3600));
    }

    @Test
    void builderChecks() {
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().tun(a.tun).build());
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().tun(a.tun).socket(a.socket).build());
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().port(0));
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().mtu(67));
        VxlanEncapsulator vx = VxlanEncapsulator.of(1, "02:00:00:00:00:01");
        assertThrows(IllegalArgumentException.class, () -> Forwarder.builder().tun(a.tun).socket(a.socket)
                .ownSubnet(SUBNET_A).encapsulator(vx).peers(a.forwarder.peers()).build(), "flannel peers for vxlan");
        Forwarder refused = Forwarder.builder().tun(a.tun).socket(a.socket).ownSubnet(SUBNET_A).threadFactory(r -> {
            throw new IllegalStateException("test: no threads");
        }).build();
        assertThrows(IllegalStateException.class, refused::start);
        assertFalse(refused.isRunning());
        assertTrue(a.tun.isOpen(), "not owned by default");
        Forwarder f = Forwarder.builder().tun(a.tun).socket(a.socket).ownSubnet(SUBNET_A).build();
        assertEquals(MTU, f.mtu());
        assertEquals(8285, f.port());
        assertEquals(8472, Forwarder.builder().tun(a.tun).socket(a.socket).ownSubnet(SUBNET_A).encapsulator(vx)
                .build().port());
        f.close();
        assertTrue(a.tun.isOpen(), "not owned by default");
        assertTrue(a.socket.isOpen(), "not owned by default");
    }
}
