package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.TrafficStats;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.internal.VirtioNetHeader;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import io.overlay4j.udp.testing.TcpPackets;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Broken input from the TUN side into the one pipeline, with offloads on and off: random frames are counted and the
 * loop goes on; and the accounting of coalesced packets. Real {@link UdpSocket}s on loopback; the TUN is in memory so
 * the test can see every frame. Hostile datagrams from the network side are the fuzzer's business
 * ({@code io.overlay4j.bench.fuzz.HostileDatagrams} in overlay-bench, tested there against this forwarder and in
 * {@code examples} against a node in namespaces).
 */
class ForwarderFuzzTest {
    private static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("10.5.0.0/16");
    private static final Ipv4Prefix OWN = Ipv4Prefix.parse("10.5.2.0/24");
    private static final Ipv4Prefix PEER = Ipv4Prefix.parse("10.5.3.0/24");
    private static final int MTU = 1472;

    private final List<AutoCloseable> closeMe = new ArrayList<>();
    private final List<Throwable> errors = new CopyOnWriteArrayList<>();
    private Forwarder forwarder;

    @AfterEach
    void tearDown() throws Exception {
        if (forwarder != null) {
            forwarder.close();
            assertTrue(forwarder.awaitTermination(5, TimeUnit.SECONDS));
        }
        for (AutoCloseable c : closeMe) {
            c.close();
        }
    }

    @ParameterizedTest(name = "offloads {0}")
    @ValueSource(booleans = {true, false})
    void randomFramesFromTheTunAreCountedAndTheLoopGoesOn(boolean offloads) throws Exception {
        InMemoryTunDevice tun = new InMemoryTunDevice("fuzzout" + offloads, MTU, offloads);
        UdpSocket socket = UdpSocket.open(new InetSocketAddress("127.0.0.3", 0), UdpSocket.Options.defaults());
        int port = socket.localAddress().getPort();
        UdpSocket sink = UdpSocket.open(new InetSocketAddress("127.0.0.4", port), UdpSocket.Options.builder()
                .receiveBufferSize(16 << 20).build());
        closeMe.add(sink);
        forwarder = Forwarder.builder().tun(tun).socket(socket).ownSubnet(OWN).network(NETWORK).ownsTun(true)
                .ownsSocket(true).errorHandler(errors::add)
                .peers(PeerTable.builder().put(ForwarderTest.lease(PEER, addr(127, 0, 0, 4)), port).build()).build();
        forwarder.start();
        Random random = new Random(5);
        int frames = 20_000;
        for (int i = 0; i < frames; i++) {
            byte[] f = new byte[random.nextInt(200)];
            random.nextBytes(f);
            int at = offloads ? VirtioNetHeader.LENGTH : 0;
            if (f.length > at + 20 && random.nextBoolean()) {
                f[at] = 0x45; // make the IPv4 checks go deeper
                if (random.nextBoolean()) {
                    f[at + 16] = 10;
                    f[at + 17] = 5;
                    f[at + 18] = 3;
                }
            }
            tun.injectFrame(f);
        }
        byte[] good = Packets.ipv4(addr(10, 5, 2, 7), addr(10, 5, 3, 7), 17, 64, 100);
        tun.inject(good);
        await(s -> s.egressPackets() >= 1 && s.egressPackets() + s.totalDrops() >= frames + 1, "all frames handled");
        ByteBuffer in = ByteBuffer.allocateDirect(UdpSocket.MAX_GRO_BYTES);
        UdpSocket.Received info = new UdpSocket.Received();
        boolean seen = false;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!seen && System.nanoTime() < deadline) {
            in.clear();
            if (sink.tryReceive(in, info) < 0) {
                Thread.sleep(1);
                continue;
            }
            seen = info.length() == 100 && in.get(12) == 10 && in.get(15) == 7 && in.get(19) == 7;
        }
        assertTrue(seen, "the valid packet behind the garbage was not forwarded");
        assertTrue(forwarder.isRunning());
    }

    /**
     * A GRO receive of one TCP flow becomes one TUN write of a super-packet: its packets count once, as forwarded
     * only when that write succeeds, and each as a failed write when it does not.
     */
    @org.junit.jupiter.api.Test
    void coalescedPacketsCountOnceAndOnlyWhenWritten() throws Exception {
        InMemoryTunDevice tun = new InMemoryTunDevice("coal", MTU, true);
        UdpSocket socket = UdpSocket.open(new InetSocketAddress("127.0.0.3", 0), UdpSocket.Options.builder()
                .receiveBufferSize(8 << 20).gro(true).build());
        int port = socket.localAddress().getPort();
        UdpSocket peer = UdpSocket.open(new InetSocketAddress("127.0.0.4", port), UdpSocket.Options.defaults());
        closeMe.add(peer);
        forwarder = Forwarder.builder().tun(tun).socket(socket).ownSubnet(OWN).network(NETWORK).ownsTun(true)
                .ownsSocket(true).errorHandler(errors::add)
                .peers(PeerTable.builder().put(ForwarderTest.lease(PEER, addr(127, 0, 0, 4)), port).build()).build();
        forwarder.start();
        TcpPackets.Spec flow = new TcpPackets.Spec();
        flow.src = addr(10, 5, 3, 7);
        flow.dst = addr(10, 5, 2, 7);
        flow.payload = 1000;
        int segment = 20 + 32 + 1000;
        ByteBuffer run = ByteBuffer.allocateDirect(10 * segment);

        tun.failWrites(new java.io.IOException("test: EIO"));
        sendRun(peer, run, flow, port);
        TrafficStats s = await(st -> st.drops(DropReason.TUN_WRITE_FAILED) == 10, "10 failed writes");
        assertEquals(0, s.ingressPackets(), s::toString);
        assertEquals(10, s.totalDrops(), s::toString);

        tun.failWrites(null);
        flow.seq += 10 * 1000;
        sendRun(peer, run, flow, port);
        s = await(st -> st.ingressPackets() == 10, "10 packets forwarded");
        assertEquals(10L * segment, s.ingressBytes(), "bytes as received, not as merged");
        assertEquals(10, s.totalDrops(), s::toString);
        byte[] frame = tun.takeWritten(5, TimeUnit.SECONDS);
        assertEquals(VirtioNetHeader.GSO_TCPV4, frame[1], "one merged super-packet");
        assertEquals(10 + 52 + 10 * 1000, frame.length);
        assertEquals(0, tun.writtenPending());
        assertEquals(1, errors.size(), errors::toString);
    }

    private static void sendRun(UdpSocket peer, ByteBuffer run, TcpPackets.Spec flow, int port) throws Exception {
        run.clear();
        TcpPackets.Spec s = flow.copy();
        for (int i = 0; i < 10; i++) {
            s.id = flow.id + i;
            run.put(s.build());
            s.seq += s.payload;
        }
        run.flip();
        peer.sendSegmented(run, 20 + 32 + flow.payload, addr(127, 0, 0, 3), port);
    }

    private TrafficStats await(Predicate<TrafficStats> condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        TrafficStats s = forwarder.stats();
        while (!condition.test(s)) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting for " + what + "; stats: " + s);
            }
            Thread.sleep(2);
            s = forwarder.stats();
        }
        return s;
    }
}
