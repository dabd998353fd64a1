package io.overlay4j.bench.fuzz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.TrafficStats;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.Forwarder;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.VxlanEncapsulator;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The fuzzer's datagrams into the one forwarder pipeline, over real {@link UdpSocket}s on loopback into an in-memory
 * TUN that shows every frame written: flannel udp and VXLAN, offloads (virtio-header TUN, GRO receives, GSO runs from
 * the fuzzer) on and off. Every datagram is counted exactly where {@link FuzzCase#expected} says, only admitted cases
 * reach the TUN, nothing is answered, and the loops survive. Needs no root: the kernel tests that send the same
 * datagrams at a real node in namespaces are in {@code examples} ({@code HostileDatagramsTest}).
 */
class HostileDatagramsForwarderTest {
    private static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("10.5.0.0/16");
    private static final Ipv4Prefix OWN = Ipv4Prefix.parse("10.5.2.0/24");
    private static final Ipv4Prefix SENDER = Ipv4Prefix.parse("10.5.3.0/24");
    private static final Ipv4Prefix OTHER = Ipv4Prefix.parse("10.5.1.0/24");
    private static final String OWN_MAC = "02:00:00:00:02:02";
    private static final String SENDER_MAC = "02:00:00:00:03:03";
    private static final int DATAGRAMS = 60_000;

    private final List<Throwable> errors = new CopyOnWriteArrayList<>();
    private Forwarder forwarder;
    private DatagramFuzzer fuzzer;

    @AfterEach
    void tearDown() throws Exception {
        if (fuzzer != null) {
            fuzzer.close();
        }
        if (forwarder != null) {
            forwarder.close();
            assertTrue(forwarder.awaitTermination(5, TimeUnit.SECONDS));
        }
    }

    @ParameterizedTest(name = "{0}, offloads {1}")
    @CsvSource({"udp, true", "udp, false", "vxlan, true", "vxlan, false"})
    void everyDatagramIsCountedWhereItsCaseSaysAndOnlyAdmittedOnesReachTheTun(String wire, boolean offloads)
            throws Exception {
        Encapsulation encapsulation = Encapsulation.parse(wire);
        boolean vxlan = encapsulation == Encapsulation.VXLAN;
        int mtu = vxlan ? 1450 : 1472;
        Encapsulator encapsulator = vxlan ? VxlanEncapsulator.of(1, OWN_MAC) : FlannelUdpEncapsulator.INSTANCE;
        InMemoryTunDevice tun = new InMemoryTunDevice("fuzz", mtu, offloads);
        UdpSocket socket = UdpSocket.open(new InetSocketAddress("127.0.0.3", 0), UdpSocket.Options.builder()
                .receiveBufferSize(8 << 20).gro(offloads).build());
        int port = socket.localAddress().getPort();
        PeerTable peers = PeerTable.builder(encapsulator)
                .put(lease(SENDER, "127.0.0.4", vxlan ? SENDER_MAC : null), port)
                .put(lease(OTHER, "127.0.0.6", vxlan ? "02:00:00:00:01:01" : null), port).build();
        forwarder = Forwarder.builder().tun(tun).socket(socket).encapsulator(encapsulator).mtu(mtu).ownSubnet(OWN)
                .network(NETWORK).ownsTun(true).ownsSocket(true).errorHandler(errors::add).peers(peers).build();
        assertEquals(2, forwarder.peers().size(), forwarder.peers().skippedLeases().toString());
        forwarder.start();

        HostileDatagrams.Target target = HostileDatagrams.Target.builder().encapsulation(encapsulation)
                .network(NETWORK).receiverSubnet(OWN).receiverAddress(Ipv4Prefix.parseAddress("127.0.0.3")).port(port)
                .mtu(mtu).senderAddress(Ipv4Prefix.parseAddress("127.0.0.4")).senderSubnet(SENDER)
                .otherSubnet(OTHER).otherHost(Ipv4Prefix.parseAddress("127.0.0.6")).receiverMac(OWN_MAC)
                .senderMac(SENDER_MAC).build();
        fuzzer = DatagramFuzzer.builder().target(target).seed(offloads ? 41 : 42).gso(offloads)
                .strangerAddress(Ipv4Prefix.parseAddress("127.0.0.5"))
                .pace(() -> forwarder.stats().totalDrops(), 2048).build();
        FuzzResult sent = fuzzer.run(DATAGRAMS, null);
        assertEquals(DATAGRAMS, sent.datagrams(), sent.table());
        assertEquals(0, sent.sendErrors(), sent.table());
        for (FuzzCase c : FuzzCase.values()) {
            if (c.appliesTo(encapsulation)) {
                assertTrue(sent.sent(c) > 0, c + " never sent:\n" + sent.table());
            }
        }

        long total = sent.datagrams();
        TrafficStats s = await(st -> st.ingressPackets() + st.totalDrops() >= total, sent);
        for (Map.Entry<DropReason, Long> e : sent.expectedDrops().entrySet()) {
            assertEquals(e.getValue(), s.drops(e.getKey()), e.getKey() + ": " + s + "\n" + sent.table());
        }
        assertEquals(sent.expectedAdmitted(), s.ingressPackets(), s + "\n" + sent.table());
        assertEquals(0, s.egressPackets() + s.icmpSent(), "something was answered: " + s);
        assertTrue(errors.isEmpty(), errors::toString);
        System.out.printf("%s, offloads %s: %s; forwarder: %s%n", wire, offloads, sent, s);

        // Every frame on the TUN: an IPv4 packet from the sender's subnet to ours, of an admitted case.
        long frames = 0;
        byte[] frame;
        while ((frame = tun.takeWritten(0, TimeUnit.MILLISECONDS)) != null) {
            ByteBuffer f = ByteBuffer.wrap(frame);
            int at = offloads ? 10 : 0;
            assertEquals(0, offloads ? frame[1] : 0, "a UDP packet is never merged");
            assertEquals(4, (f.get(at) & 0xff) >> 4, "IPv4");
            assertEquals(frame.length - at, f.getShort(at + 2) & 0xffff, "total length = frame");
            assertTrue(SENDER.contains(f.getInt(at + 12)), "source");
            assertTrue(OWN.contains(f.getInt(at + 16)), "destination");
            FuzzCase c = HostileDatagrams.markedCase(f.position(at + 28));
            assertTrue(c != null && c.expected(encapsulation) == null, "a frame of case " + c);
            frames++;
        }
        assertEquals(sent.expectedAdmitted(), frames, "packets on the TUN");
        assertTrue(forwarder.isRunning());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"udp", "vxlan"})
    void aSeedReproducesTheDatagrams(String wire) {
        Encapsulation encapsulation = Encapsulation.parse(wire);
        HostileDatagrams.Target target = HostileDatagrams.Target.builder().encapsulation(encapsulation)
                .network(NETWORK).receiverSubnet(OWN).receiverAddress(Ipv4Prefix.parseAddress("127.0.0.3"))
                .senderAddress(Ipv4Prefix.parseAddress("127.0.0.4")).senderSubnet(SENDER).receiverMac(OWN_MAC)
                .senderMac(SENDER_MAC).build();
        HostileDatagrams a = new HostileDatagrams(target, 7);
        HostileDatagrams b = new HostileDatagrams(target, 7);
        HostileDatagrams c = new HostileDatagrams(target, 8);
        ByteBuffer x = ByteBuffer.allocate(HostileDatagrams.MAX_DATAGRAM);
        ByteBuffer y = ByteBuffer.allocate(HostileDatagrams.MAX_DATAGRAM);
        ByteBuffer z = ByteBuffer.allocate(HostileDatagrams.MAX_DATAGRAM);
        boolean differs = false;
        for (int i = 0; i < 2000; i++) {
            FuzzCase ca = a.nextCase();
            assertEquals(ca, b.nextCase());
            int size = a.nextSize(ca);
            assertEquals(size, b.nextSize(ca));
            a.write(ca, x, 0, size, i);
            b.write(ca, y, 0, size, i);
            assertEquals(x.duplicate().limit(size), y.duplicate().limit(size), ca + " #" + i);
            FuzzCase cc = c.nextCase();
            int sc = c.nextSize(cc);
            c.write(cc, z, 0, sc, i);
            differs |= cc != ca || sc != size || !x.duplicate().limit(size).equals(z.duplicate().limit(sc));
        }
        assertTrue(differs, "another seed made the same datagrams");
    }

    private static Lease lease(Ipv4Prefix subnet, String publicIp, String mac) {
        LeaseAttributes a = mac == null ? LeaseAttributes.udp(Ipv4Prefix.parseAddress(publicIp))
                : new LeaseAttributes(Ipv4Prefix.parseAddress(publicIp), null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"" + mac + "\"}");
        return new Lease(subnet, a, Instant.now().plusSeconds(3600));
    }

    private TrafficStats await(java.util.function.Predicate<TrafficStats> condition, FuzzResult sent)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        TrafficStats s = forwarder.stats();
        while (!condition.test(s)) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("not every datagram was accounted for; stats: " + s + "\n" + sent.table());
            }
            Thread.sleep(5);
            s = forwarder.stats();
        }
        Thread.sleep(100); // anything counted twice would show now
        return forwarder.stats();
    }
}
