package io.overlay4j.udp.internal;

import static io.overlay4j.udp.testing.Packets.addr;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * {@link EgressPath#drain} batches single packets: consecutive packets for one peer whose datagrams have one length
 * (the last may be shorter) leave with one segmented send, in the order they were read; another peer, a longer
 * packet, 64 datagrams or the end of the drain closes a run.
 */
class EgressPathTest {
    private static final int MTU = 1472;
    private static final int PEER_A = addr(192, 0, 2, 10);
    private static final int PEER_B = addr(192, 0, 2, 11);

    /** One call on the port: the peer, the segment size (0 for a plain send) and the datagrams it carried. */
    record Send(int address, int segmentSize, List<byte[]> datagrams) {
    }

    /** Records sends, splitting segmented ones into their datagrams. */
    static final class RecordingPort implements DatagramPort {
        final List<Send> sends = new ArrayList<>();

        @Override
        public boolean groEnabled() {
            return false;
        }

        @Override
        public boolean gsoSupported() {
            return true;
        }

        @Override
        public void send(ByteBuffer payload, int address, int port) {
            byte[] d = new byte[payload.remaining()];
            payload.get(d);
            sends.add(new Send(address, 0, List.of(d)));
        }

        @Override
        public void sendSegmented(ByteBuffer payload, int segmentSize, int address, int port) {
            List<byte[]> datagrams = new ArrayList<>();
            while (payload.hasRemaining()) {
                byte[] d = new byte[Math.min(segmentSize, payload.remaining())];
                payload.get(d);
                datagrams.add(d);
            }
            sends.add(new Send(address, segmentSize, datagrams));
        }

        @Override
        public int receive(ByteBuffer dst, UdpSocket.Received info) {
            throw new UnsupportedOperationException();
        }

        @Override
        public int tryReceive(ByteBuffer dst, UdpSocket.Received info) {
            return -1;
        }

        @Override
        public boolean isOpen() {
            return true;
        }
    }

    private final InMemoryTunDevice tun = new InMemoryTunDevice("egress0", MTU);
    private final RecordingPort port = new RecordingPort();
    private final TrafficCounters counters = new TrafficCounters();
    private final EgressPath path;
    private final PeerTable table;

    EgressPathTest() {
        Instant expiry = Instant.now().plusSeconds(60);
        PeerTable table = PeerTable.builder()
                .put(new Lease(Ipv4Prefix.parse("10.7.2.0/24"), LeaseAttributes.udp(Ipv4Prefix.fromInt(PEER_A)),
                        expiry), 8285)
                .put(new Lease(Ipv4Prefix.parse("10.7.3.0/24"), LeaseAttributes.udp(Ipv4Prefix.fromInt(PEER_B)),
                        expiry), 8285)
                .build();
        this.table = table;
        path = new EgressPath(tun, port, FlannelUdpEncapsulator.INSTANCE, MTU, addr(10, 7, 1, 0),
                new AtomicReference<>(table), counters, e -> { });
    }

    private byte[] packet(int dstHost, int length, int id) {
        byte[] p = Packets.ipv4(addr(10, 7, 1, 2), dstHost, 17, 64, length);
        p[length - 1] = (byte) id; // tells the packets apart
        Packets.setHeaderChecksum(p, 0);
        return p;
    }

    @Test
    void equalSizedPacketsForOnePeerLeaveInOneSegmentedSendInOrder() throws IOException {
        List<byte[]> in = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            in.add(packet(addr(10, 7, 2, 9), 1400, i));
        }
        in.add(packet(addr(10, 7, 2, 9), 900, 5)); // shorter: closes the run as its last datagram
        in.add(packet(addr(10, 7, 2, 9), 1400, 6)); // after a short one: a new run
        in.add(packet(addr(10, 7, 3, 9), 1400, 7)); // another peer
        in.add(packet(addr(10, 7, 3, 9), 1400, 8));
        in.add(packet(addr(10, 7, 2, 9), 1200, 9)); // back to A
        in.forEach(tun::inject);

        assertEquals(in.size(), path.drain(64));

        assertEquals(4, port.sends.size(), "sends: " + port.sends);
        assertSend(port.sends.get(0), PEER_A, 1400, in.subList(0, 6));
        assertSend(port.sends.get(1), PEER_A, 0, in.subList(6, 7));
        assertSend(port.sends.get(2), PEER_B, 1400, in.subList(7, 9));
        assertSend(port.sends.get(3), PEER_A, 0, in.subList(9, 10));
        assertEquals(in.size(), counters.packets());
        long bytes = in.stream().mapToLong(p -> p.length).sum();
        assertEquals(bytes, counters.bytes());
        // Batched packets count for their peer too.
        PeerCounters a = PeerCounters.of(table.get(Ipv4Prefix.parse("10.7.2.0/24")));
        PeerCounters b = PeerCounters.of(table.get(Ipv4Prefix.parse("10.7.3.0/24")));
        assertEquals(8, a.egressPackets());
        assertEquals(5 * 1400 + 900 + 1400 + 1200, a.egressBytes());
        assertEquals(2, b.egressPackets());
        assertEquals(2 * 1400, b.egressBytes());
    }

    @Test
    void aRunHoldsAtMost64DatagramsAnd64KiB() throws IOException {
        List<byte[]> small = new ArrayList<>();
        for (int i = 0; i < 70; i++) {
            small.add(packet(addr(10, 7, 2, 9), 100, i));
        }
        small.forEach(tun::inject);
        assertEquals(70, path.drain(100));
        assertEquals(2, port.sends.size());
        assertSend(port.sends.get(0), PEER_A, 100, small.subList(0, 64));
        assertSend(port.sends.get(1), PEER_A, 100, small.subList(64, 70));

        port.sends.clear();
        List<byte[]> big = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            big.add(packet(addr(10, 7, 2, 9), 1472, i));
        }
        big.forEach(tun::inject);
        assertEquals(50, path.drain(100));
        int perSend = 65507 / 1472; // 44 datagrams fit one UDP payload
        assertEquals(2, port.sends.size());
        assertSend(port.sends.get(0), PEER_A, 1472, big.subList(0, perSend));
        assertSend(port.sends.get(1), PEER_A, 1472, big.subList(perSend, 50));
    }

    @Test
    void dropsInsideARunAreCountedAndTheRestStillLeaves() throws IOException {
        byte[] ttlZero = packet(addr(10, 7, 2, 9), 1400, 1);
        ttlZero[8] = 0;
        Packets.setHeaderChecksum(ttlZero, 0);
        List<byte[]> good = List.of(packet(addr(10, 7, 2, 9), 1400, 0), packet(addr(10, 7, 2, 9), 1400, 2));
        tun.inject(good.get(0));
        tun.inject(ttlZero);
        tun.inject(good.get(1));
        assertEquals(3, path.drain(8));
        assertEquals(1, port.sends.size());
        assertSend(port.sends.get(0), PEER_A, 1400, good);
        assertEquals(1, counters.drops(DropReason.TTL_EXPIRED) + counters.drops(DropReason.BAD_HEADER),
                "the TTL-0 packet is dropped under one reason");
        assertEquals(2, counters.packets());
    }

    private static void assertSend(Send send, int peer, int segmentSize, List<byte[]> packets) {
        assertEquals(peer, send.address(), "peer");
        assertEquals(segmentSize, send.segmentSize(), "segment size");
        assertEquals(packets.size(), send.datagrams().size(), "datagrams");
        for (int i = 0; i < packets.size(); i++) {
            // flannel udp: the datagram is the inner packet with its TTL decremented
            byte[] expected = Packets.withTtlDecremented(packets.get(i), 1);
            assertArrayEquals(expected, send.datagrams().get(i), "datagram " + i + " of " + Arrays.toString(
                    new int[] {peer, segmentSize}));
        }
    }
}
