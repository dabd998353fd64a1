package io.overlay4j.udp.internal;

import static io.overlay4j.udp.testing.Packets.addr;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import io.overlay4j.udp.testing.TcpPackets;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * {@link IngressPath} on a TUN that refuses USO frames (a kernel before Linux 6.2): the refused run still reaches the
 * TUN, datagram by datagram with complete checksums, and the path merges no UDP after that; nothing is dropped.
 */
class IngressPathTest {
    private static final int MTU = 1472;
    private static final int PEER = addr(192, 0, 2, 10);
    private static final int GSO_UDP_L4 = 5;

    /** Hands out queued GRO batches, as a socket with UDP_GRO would. */
    private static final class BatchPort implements DatagramPort {
        private final Queue<byte[][]> batches = new ArrayDeque<>();

        @Override
        public boolean groEnabled() {
            return true;
        }

        @Override
        public boolean gsoSupported() {
            return false;
        }

        @Override
        public void send(ByteBuffer payload, int address, int port) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void sendSegmented(ByteBuffer payload, int segmentSize, int address, int port) {
            throw new UnsupportedOperationException();
        }

        @Override
        public int receive(ByteBuffer dst, UdpSocket.Received info) {
            throw new UnsupportedOperationException();
        }

        @Override
        public int tryReceive(ByteBuffer dst, UdpSocket.Received info) {
            byte[][] batch = batches.poll();
            if (batch == null) {
                return -1;
            }
            int n = 0;
            for (byte[] d : batch) {
                dst.put(d);
                n += d.length;
            }
            info.set(PEER, FlannelUdpEncapsulator.DEFAULT_PORT, n, batch.length > 1 ? batch[0].length : 0, false);
            return n;
        }

        @Override
        public boolean isOpen() {
            return true;
        }
    }

    @Test
    void aRefusedUsoFrameGoesOutDatagramByDatagramAndUdpIsNotMergedAgain() throws Exception {
        InMemoryTunDevice tun = new InMemoryTunDevice("in0", MTU, true);
        tun.refuseGsoType(GSO_UDP_L4);
        BatchPort port = new BatchPort();
        PeerTable table = PeerTable.builder().put(new Lease(Ipv4Prefix.parse("100.96.2.0/24"),
                LeaseAttributes.udp(Ipv4Prefix.fromInt(PEER)), Instant.now().plusSeconds(60)),
                FlannelUdpEncapsulator.DEFAULT_PORT).build();
        TrafficCounters counters = new TrafficCounters();
        List<Throwable> errors = new ArrayList<>();
        TcpCoalescer coalescer = new TcpCoalescer(64, 128, 512 * 1024, true);
        IngressPath path = new IngressPath(tun, port, FlannelUdpEncapsulator.INSTANCE, MTU,
                Ipv4Prefix.parse("100.96.1.0/24"), Ipv4Prefix.parse("100.96.0.0/16"), true,
                new AtomicReference<>(table), counters, errors::add, coalescer);

        for (int round = 0; round < 2; round++) {
            byte[][] batch = new byte[10][];
            for (int i = 0; i < batch.length; i++) {
                batch[i] = TcpCoalescerTest.udpDatagram(7000, 1000, round * 10_000 + i * 1000);
            }
            port.batches.add(batch);
            assertEquals(1, path.drain(8));
            for (int i = 0; i < batch.length; i++) {
                byte[] frame = tun.takeWritten(1, TimeUnit.SECONDS);
                assertNotNull(frame, "round " + round + ": datagram " + i + " not written");
                assertArrayEquals(new byte[10], Arrays.copyOf(frame, 10), "a plain frame");
                byte[] p = Arrays.copyOfRange(frame, 10, frame.length);
                byte[] sent = batch[i];
                assertEquals(sent.length, p.length, "length of datagram " + i);
                assertTrue(Packets.headerChecksumOk(p, 0), "IP header checksum of datagram " + i);
                assertTrue(TcpPackets.l4ChecksumOk(p, 0), "UDP checksum of datagram " + i);
                // Everything but the IP identification (and so the header checksum) as it was sent.
                assertArrayEquals(Arrays.copyOfRange(sent, 12, sent.length), Arrays.copyOfRange(p, 12, p.length),
                        "datagram " + i);
            }
            assertEquals(0, tun.writtenPending(), "nothing more written");
            assertTrue(!coalescer.mergesUdp(), "UDP merging off after the refusal");
        }
        assertEquals(20, counters.packets());
        for (DropReason reason : DropReason.values()) {
            assertEquals(0, counters.drops(reason), reason.name());
        }
        assertEquals(List.of(), errors, "a refused USO frame is no error");
    }
}
