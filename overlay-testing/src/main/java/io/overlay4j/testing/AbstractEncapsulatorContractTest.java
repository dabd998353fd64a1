package io.overlay4j.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.Lease;
import io.overlay4j.udp.testing.Packets;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The behaviour every {@link Encapsulator} must show, run against each implementation (flannel's udp format and
 * VXLAN in overlay-udp). Two nodes of one network are involved: the sender encapsulates for the receiver, whose lease
 * it knows, and the receiver decapsulates.
 *
 * <p>What the contract holds: the sizes are consistent; a round trip gives the inner packet back (its TTL may be
 * decremented once per leg, with the header checksum kept right); encapsulation writes exactly the headroom in front of
 * the packet and nothing outside it; decapsulation never throws and never leaves the datagram's bounds, whatever it is
 * given; an unusable lease is refused with {@link IllegalArgumentException}; the same input gives the same bytes from
 * any number of threads; and no call allocates.
 */
@Timeout(60)
public abstract class AbstractEncapsulatorContractTest {
    /** The largest inner packet the tests allow: flannel's default TUN MTU. */
    protected static final int MTU = 1472;
    private static final int CANARY = 0x5a;

    /** The sending node's encapsulator. */
    protected abstract Encapsulator sender();

    /** The receiving node's encapsulator, of the same network ({@link #sender()} itself if nothing differs). */
    protected abstract Encapsulator receiver();

    /** The receiver's lease as the sender sees it in the store: {@code sender().peerContext} accepts it. */
    protected abstract Lease receiverLease();

    /** A lease the sender cannot use (another backend type, malformed backend data), or {@code null} if none is. */
    protected Lease unusableLease() {
        return null;
    }

    /** An inner IPv4 UDP packet 100.96.1.2 → 100.96.2.3 with TTL 64 and a correct header checksum. */
    protected static byte[] innerPacket(int payloadLength) {
        byte[] payload = new byte[payloadLength];
        for (int i = 0; i < payload.length; i++) {
            payload[i] = (byte) (i * 7 + 3);
        }
        return Packets.udp(Packets.addr(100, 96, 1, 2), 40000, Packets.addr(100, 96, 2, 3), 9999, payload);
    }

    /** {@code packet} at {@code offset + headroom} of a canary-filled buffer, position and limit around it. */
    private ByteBuffer framed(byte[] packet, int offset, boolean direct) {
        int headroom = sender().headroom();
        int capacity = offset + headroom + packet.length + 16;
        ByteBuffer buf = direct ? ByteBuffer.allocateDirect(capacity) : ByteBuffer.allocate(capacity);
        for (int i = 0; i < capacity; i++) {
            buf.put(i, (byte) CANARY);
        }
        buf.put(offset + headroom, packet);
        buf.limit(offset + headroom + packet.length).position(offset + headroom);
        return buf;
    }

    private static byte[] remaining(ByteBuffer buf) {
        byte[] b = new byte[buf.remaining()];
        buf.get(buf.position(), b);
        return b;
    }

    /** Encapsulates a fresh copy of {@code packet}: the UDP payload the sender would send. */
    private byte[] payloadOf(byte[] packet) {
        ByteBuffer buf = framed(packet, 0, false);
        assertNull(sender().encapsulate(buf, sender().peerContext(receiverLease()), MTU));
        return remaining(buf);
    }

    @Test
    void sizesAreConsistent() {
        for (Encapsulator e : List.of(sender(), receiver())) {
            assertTrue(e.headroom() >= 0, "headroom " + e.headroom());
            assertTrue(e.overhead() >= 28 + e.headroom(), "overhead " + e.overhead() + " must cover outer IPv4 and "
                    + "UDP headers and the headroom " + e.headroom());
            assertTrue(e.defaultPort() > 0 && e.defaultPort() <= 65535, "port " + e.defaultPort());
        }
        assertEquals(sender().headroom(), receiver().headroom());
        assertEquals(sender().overhead(), receiver().overhead());
        assertEquals(sender().defaultPort(), receiver().defaultPort());
    }

    @Test
    void aRoundTripGivesTheInnerPacketBack() {
        Object context = sender().peerContext(receiverLease());
        assertNotNull(context, "peerContext is never null");
        for (boolean direct : new boolean[] {false, true}) {
            for (int size : new int[] {0, 1, 100, MTU - 28}) {
                byte[] packet = innerPacket(size);
                ByteBuffer buf = framed(packet, 5, direct);
                assertNull(sender().encapsulate(buf, context, MTU), "encapsulate " + size);
                ByteBuffer wire = ByteBuffer.wrap(remaining(buf));
                assertNull(receiver().decapsulate(wire, MTU), "decapsulate " + size);
                byte[] inner = remaining(wire);
                assertEquals(packet.length, inner.length, "inner length");
                int ttlDrop = (packet[8] & 0xff) - (inner[8] & 0xff);
                assertTrue(ttlDrop >= 0 && ttlDrop <= 2, "TTL decremented at most once per leg: " + ttlDrop);
                assertTrue(Packets.headerChecksumOk(inner, 0), "header checksum after the round trip");
                byte[] expected = packet.clone();
                expected[8] = inner[8];
                expected[10] = inner[10];
                expected[11] = inner[11];
                assertArrayEquals(expected, inner, "all but TTL and header checksum unchanged");
            }
        }
    }

    @Test
    void encapsulateWritesExactlyTheHeadroomAndNothingElse() {
        Object context = sender().peerContext(receiverLease());
        int headroom = sender().headroom();
        byte[] packet = innerPacket(64);
        for (boolean direct : new boolean[] {false, true}) {
            ByteBuffer buf = framed(packet, 9, direct);
            int position = buf.position();
            int limit = buf.limit();
            assertNull(sender().encapsulate(buf, context, MTU));
            assertEquals(position - headroom, buf.position(), "the position moves back by the headroom");
            assertEquals(limit, buf.limit(), "the limit stays");
            ByteBuffer whole = buf.duplicate().clear();
            for (int i = 0; i < whole.capacity(); i++) {
                if (i < buf.position() || i >= buf.limit()) {
                    assertEquals((byte) CANARY, whole.get(i), "byte " + i + " outside the payload changed");
                }
            }
        }
    }

    @Test
    void decapsulateNeverThrowsNorLeavesTheDatagram() {
        byte[] valid = payloadOf(innerPacket(200));
        List<byte[]> hostile = new ArrayList<>();
        for (int n = 0; n < valid.length; n++) {
            hostile.add(Arrays.copyOf(valid, n)); // every truncation
        }
        for (int i = 0; i < valid.length; i++) {
            byte[] flipped = valid.clone();
            flipped[i] ^= (byte) 0xff; // every single corrupted byte
            hostile.add(flipped);
        }
        Random random = new Random(42);
        for (int i = 0; i < 500; i++) {
            byte[] junk = new byte[random.nextInt(300)];
            random.nextBytes(junk);
            hostile.add(junk); // and noise
        }
        for (byte[] datagram : hostile) {
            ByteBuffer buf = ByteBuffer.allocate(datagram.length + 8);
            for (int i = 0; i < buf.capacity(); i++) {
                buf.put(i, (byte) CANARY);
            }
            buf.put(4, datagram).position(4).limit(4 + datagram.length);
            DropReason reason = receiver().decapsulate(buf, MTU);
            if (reason == null) {
                assertTrue(buf.position() >= 4 && buf.limit() <= 4 + datagram.length
                        && buf.position() <= buf.limit(), "an accepted inner packet lies within the datagram");
            }
            ByteBuffer whole = buf.duplicate().clear();
            for (int i : new int[] {0, 1, 2, 3, whole.capacity() - 4, whole.capacity() - 1}) {
                assertEquals((byte) CANARY, whole.get(i), "byte " + i + " outside the datagram changed");
            }
        }
        assertNotNull(receiver().decapsulate(ByteBuffer.allocate(0), MTU), "an empty datagram is dropped");
    }

    @Test
    void anUnusableLeaseIsRefused() {
        Lease unusable = unusableLease();
        if (unusable != null) {
            assertThrows(IllegalArgumentException.class, () -> sender().peerContext(unusable));
        }
    }

    @Test
    void threadsGetTheSameBytes() throws Exception {
        byte[] packet = innerPacket(300);
        byte[] expected = payloadOf(packet);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> runs = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                runs.add(pool.submit(() -> {
                    Object context = sender().peerContext(receiverLease());
                    for (int i = 0; i < 2000; i++) {
                        ByteBuffer buf = framed(packet, i % 7, (i & 1) == 0);
                        assertNull(sender().encapsulate(buf, context, MTU));
                        assertArrayEquals(expected, remaining(buf));
                    }
                    return null;
                }));
            }
            for (Future<?> f : runs) {
                f.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void noCallAllocates() {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Object context = sender().peerContext(receiverLease());
        byte[] packet = innerPacket(100);
        ByteBuffer work = ByteBuffer.allocateDirect(2048);
        ByteBuffer wire = ByteBuffer.allocateDirect(2048);
        int headroom = sender().headroom();
        for (int round = 0; round < 3; round++) { // warm up, then measure the last round
            long before = mx.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < 20_000; i++) {
                work.clear().position(headroom);
                work.put(packet).flip().position(headroom);
                sender().encapsulate(work, context, MTU);
                wire.clear();
                wire.put(work).flip();
                receiver().decapsulate(wire, MTU);
            }
            long allocated = mx.getCurrentThreadAllocatedBytes() - before;
            if (round == 2) {
                assertTrue(allocated < 20_000, "20,000 round trips allocated " + allocated + " bytes");
            }
        }
    }
}
