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
 * Hostile and broken input into the one pipeline, with offloads on (a TUN with virtio headers, GRO receives, GSO
 * runs from the sender) and off: random bytes, truncated, oversize and malformed packets, spoofed sources, foreign
 * destinations and strangers, mixed with valid traffic. Whatever comes in: nothing but the valid packets reaches the
 * TUN, every datagram is either forwarded or counted under a drop reason, nothing is answered, the loops survive.
 * Real {@link UdpSocket}s on loopback; the TUN is in memory so the test can see every frame written to it.
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
    void onlyAdmittedValidPacketsReachTheTun(boolean offloads) throws Exception {
        InMemoryTunDevice tun = new InMemoryTunDevice("fuzz" + offloads, MTU, offloads);
        UdpSocket socket = UdpSocket.open(new InetSocketAddress("127.0.0.3", 0), UdpSocket.Options.builder()
                .receiveBufferSize(8 << 20).gro(offloads).build());
        int port = socket.localAddress().getPort();
        UdpSocket peer = UdpSocket.open(new InetSocketAddress("127.0.0.4", port), UdpSocket.Options.defaults());
        UdpSocket stranger = UdpSocket.open(new InetSocketAddress("127.0.0.5", port), UdpSocket.Options.builder()
                .receiveBufferSize(1 << 20).build());
        closeMe.add(peer);
        closeMe.add(stranger);
        forwarder = Forwarder.builder().tun(tun).socket(socket).ownSubnet(OWN).network(NETWORK).ownsTun(true)
                .ownsSocket(true).errorHandler(errors::add)
                .peers(PeerTable.builder().put(ForwarderTest.lease(PEER, addr(127, 0, 0, 4)), port).build()).build();
        forwarder.start();

        Random random = new Random(offloads ? 12 : 13);
        ByteBuffer buf = ByteBuffer.allocateDirect(UdpSocket.MAX_PAYLOAD);
        int target = addr(127, 0, 0, 3);
        long sent = 0;
        long valid = 0;
        long validBytes = 0;
        for (int round = 0; round < 400; round++) {
            // A GSO run of equal-size datagrams from the peer, valid and invalid mixed: one GRO receive with offloads.
            int size = 40 + random.nextInt(MTU - 40);
            int count = 1 + random.nextInt(20);
            buf.clear();
            for (int i = 0; i < count; i++) {
                byte[] d = java.util.Arrays.copyOf(datagram(random, size), size);
                if (isValid(d)) {
                    valid++;
                    validBytes += TcpPackets.getShort(d, 2);
                }
                buf.put(d);
            }
            buf.flip();
            peer.sendSegmented(buf, size, target, port);
            sent += count;
            // Single datagrams of any size from the peer, and from a stranger.
            byte[] one = datagram(random, random.nextInt(2) == 0 ? random.nextInt(70) : random.nextInt(3000));
            buf.clear();
            buf.put(one).flip();
            peer.send(buf, target, port);
            sent++;
            if (isValid(one)) {
                valid++;
                validBytes += TcpPackets.getShort(one, 2);
            }
            byte[] good = Packets.ipv4(addr(10, 5, 3, 7), addr(10, 5, 2, 7), 6, 64, 100);
            buf.clear();
            buf.put(good).flip();
            stranger.send(buf, target, port);
            sent++;
            if (round % 20 == 19) {
                long expected = sent;
                await(s -> s.ingressPackets() + s.totalDrops() == expected, "every datagram accounted for");
            }
        }
        long total = sent;
        TrafficStats s = await(st -> st.ingressPackets() + st.totalDrops() == total, "every datagram accounted for");
        assertEquals(valid, s.ingressPackets(), s::toString);
        assertEquals(validBytes, s.ingressBytes(), s::toString);
        assertEquals(400, s.drops(DropReason.UNKNOWN_SENDER), s::toString);
        for (DropReason r : new DropReason[] {DropReason.RUNT, DropReason.NOT_IPV4, DropReason.BAD_HEADER,
            DropReason.TRUNCATED, DropReason.OVERSIZE, DropReason.TTL_EXPIRED, DropReason.SPOOFED_SOURCE,
            DropReason.FOREIGN_SOURCE, DropReason.FOREIGN_DESTINATION}) {
            assertTrue(s.drops(r) > 0, r + " never seen: " + s);
        }
        assertEquals(0, s.egressPackets() + s.icmpSent(), "something was answered: " + s);
        assertEquals(0, s.drops(DropReason.TUN_WRITE_FAILED));
        assertTrue(errors.isEmpty(), errors::toString);

        // Every frame on the TUN: well formed, from the peer's subnet, to ours.
        long packets = 0;
        byte[] frame;
        while ((frame = tun.takeWritten(0, TimeUnit.MILLISECONDS)) != null) {
            int at = offloads ? VirtioNetHeader.LENGTH : 0;
            int gso = offloads ? frame[1] & 0x7f : 0;
            int length = frame.length - at;
            assertEquals(4, (frame[at] & 0xff) >> 4, "IPv4");
            assertEquals(length, TcpPackets.getShort(frame, at + 2), "total length = frame");
            assertTrue(PEER.contains(TcpPackets.getInt(frame, at + 12)), "source");
            assertTrue(OWN.contains(TcpPackets.getInt(frame, at + 16)), "destination");
            if (gso == VirtioNetHeader.GSO_TCPV4) {
                ByteBuffer header = ByteBuffer.wrap(frame).order(java.nio.ByteOrder.nativeOrder());
                int gsoSize = header.getShort(VirtioNetHeader.GSO_SIZE_OFFSET) & 0xffff;
                int headers = 20 + ((frame[at + 32] & 0xff) >> 4) * 4;
                packets += (length - headers + gsoSize - 1) / gsoSize;
            } else {
                packets++;
            }
        }
        assertEquals(valid, packets, "packets on the TUN");
        assertTrue(forwarder.isRunning());
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

    /**
     * Whether the forwarder must admit {@code d} from the peer: IPv4, a sane header and total length (trailing bytes
     * are padding), within the MTU, TTL above 1, from the peer's subnet to ours.
     */
    private static boolean isValid(byte[] d) {
        if (d.length < 20 || (d[0] & 0xf0) != 0x40 || d.length > MTU) {
            return false;
        }
        int ihl = (d[0] & 0x0f) * 4;
        int total = TcpPackets.getShort(d, 2);
        return ihl >= 20 && ihl <= d.length && total >= ihl && total <= d.length && (d[8] & 0xff) > 1
                && PEER.contains(TcpPackets.getInt(d, 12)) && OWN.contains(TcpPackets.getInt(d, 16));
    }

    /** One datagram of about {@code size} bytes, of a random kind (valid, broken, spoofed, misdirected, random). */
    private static byte[] datagram(Random random, int size) {
        int length = Math.max(size, 20);
        int src = addr(10, 5, 3, 1 + random.nextInt(250));
        int dst = addr(10, 5, 2, 1 + random.nextInt(250));
        int proto = random.nextBoolean() ? 6 : 17;
        switch (random.nextInt(12)) {
            case 0: {
                byte[] d = new byte[size];
                random.nextBytes(d);
                if (size > 0 && (d[0] & 0xf0) == 0x40) {
                    d[0] ^= (byte) 0x80;
                }
                return d;
            }
            case 1: { // truncated: the header claims more
                byte[] d = Packets.ipv4(src, dst, proto, 64, length);
                TcpPackets.putShort(d, 2, length + 1 + random.nextInt(100));
                return d;
            }
            case 2: { // a bad IHL
                byte[] d = Packets.ipv4(src, dst, proto, 64, length);
                d[0] = (byte) (0x40 | random.nextInt(5));
                return d;
            }
            case 3: // spoofed: the receiver's own subnet, or another subnet of the network
                return Packets.ipv4(random.nextBoolean() ? addr(10, 5, 2, 9) : addr(10, 5, 1, 9), dst, proto, 64,
                        length);
            case 4: // foreign source
                return Packets.ipv4(addr(192, 168, 1, 1 + random.nextInt(200)), dst, proto, 64, length);
            case 5: // relay: to another subnet, the underlay, outside
                return Packets.ipv4(src, random.nextBoolean() ? addr(10, 5, 1, 9) : addr(127, 0, 0, 3), proto, 64,
                        length);
            case 6: // TTL runs out
                return Packets.ipv4(src, dst, proto, 1, length);
            case 7: { // IPv6
                byte[] d = Packets.ipv4(src, dst, proto, 64, length);
                d[0] = 0x60;
                return d;
            }
            case 8: // oversize
                return Packets.ipv4(src, dst, proto, 64, MTU + 1 + random.nextInt(2000));
            case 9: { // runt
                byte[] d = new byte[random.nextInt(20)];
                random.nextBytes(d);
                return d;
            }
            default: { // valid, with a valid TCP or UDP checksum left as it comes
                return Packets.ipv4(src, dst, proto, 2 + random.nextInt(200), length);
            }
        }
    }
}
