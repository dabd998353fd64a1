package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static io.overlay4j.udp.testing.Packets.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.overlay4j.DropReason;
import io.overlay4j.udp.testing.Packets;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class FlannelUdpEncapsulatorTest {
    private static final FlannelUdpEncapsulator ENCAP = FlannelUdpEncapsulator.INSTANCE;
    /** flannel-facts §3.4: TUN input, TTL 0x40, checksum 0x1181. */
    private static final String FLANNEL_IN = "45000028 12344000 40111181 0a050102 0a050205";
    /** ... on the wire: TTL 0x3f, checksum 0x1281. */
    private static final String FLANNEL_OUT = "45000028 12344000 3f111281 0a050102 0a050205";
    private static final String PAYLOAD = "00010002 00030004 00050006 00070008 0009000a";

    private static ByteBuffer wrap(byte[] bytes) {
        return ByteBuffer.wrap(bytes.clone());
    }

    private static byte[] remaining(ByteBuffer b) {
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return out;
    }

    /** What the forwarder does on egress: validate, (look up,) encapsulate. */
    private static DropReason egress(ByteBuffer b, int mtu) {
        DropReason r = FlannelUdpEncapsulator.validate(b, mtu);
        return r != null ? r : ENCAP.encapsulate(b, ENCAP.peerContext(null), mtu);
    }

    @Test
    void constants() {
        assertEquals(8285, ENCAP.defaultPort());
        assertEquals(28, ENCAP.overhead());
        assertEquals(0, ENCAP.headroom());
        assertSame(ENCAP, FlannelUdpEncapsulator.create());
    }

    @Test
    void encapsulateMatchesFlannelByteForByte() {
        ByteBuffer b = wrap(hex(FLANNEL_IN + PAYLOAD));
        assertNull(egress(b, 1472));
        assertEquals(hex(hex(FLANNEL_OUT + PAYLOAD)), hex(remaining(b)));
        assertEquals(0, b.position());
        assertEquals(40, b.limit());
    }

    @Test
    void decapsulateDecrementsAgainLikeFlannelsReceiver() {
        ByteBuffer b = wrap(hex(FLANNEL_OUT + PAYLOAD));
        assertNull(ENCAP.decapsulate(b, 1472));
        byte[] expected = Packets.withTtlDecremented(hex(FLANNEL_IN + PAYLOAD), 2);
        assertEquals(hex(expected), hex(remaining(b)));
        assertEquals("3e111381", hex(remaining(b)).split(" ")[2]);
    }

    @Test
    void worksAtAnOffsetInADirectLittleEndianPooledBuffer() {
        ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(256, 256);
        try {
            ByteBuffer view = buf.internalNioBuffer(0, 256).order(ByteOrder.LITTLE_ENDIAN);
            int base = view.position() + 17;
            byte[] in = hex(FLANNEL_IN + PAYLOAD);
            view.position(base);
            view.put(in);
            view.limit(base + in.length).position(base);
            assertNull(egress(view, 1472));
            assertEquals(base, view.position());
            assertEquals(hex(hex(FLANNEL_OUT + PAYLOAD)), hex(remaining(view)));
        } finally {
            buf.release();
        }
        assertEquals(0, buf.refCnt());
    }

    @Test
    void runt() {
        ByteBuffer b = wrap(Arrays.copyOf(hex(FLANNEL_IN), 19));
        assertEquals(DropReason.RUNT, egress(b, 1472));
        assertEquals(DropReason.RUNT, ENCAP.decapsulate(ByteBuffer.allocate(0), 1472));
    }

    @Test
    void notIpv4() {
        byte[] p = hex(FLANNEL_IN + PAYLOAD);
        p[0] = 0x60;
        assertEquals(DropReason.NOT_IPV4, egress(wrap(p), 1472));
        p[0] = (byte) 0xe5; // flannel's "version nibble 14" garbage (§3.8)
        assertEquals(DropReason.NOT_IPV4, ENCAP.decapsulate(wrap(p), 1472));
    }

    @Test
    void badHeader() {
        byte[] p = hex(FLANNEL_IN + PAYLOAD);
        p[0] = 0x44; // IHL 4
        assertEquals(DropReason.BAD_HEADER, egress(wrap(p), 1472));
        p[0] = 0x4f; // IHL 15 = 60 bytes, only 40 present
        assertEquals(DropReason.BAD_HEADER, ENCAP.decapsulate(wrap(p), 1472));
        byte[] q = hex(FLANNEL_IN + PAYLOAD);
        q[0] = 0x46; // IHL 6 = 24 bytes, but total length 20
        q[3] = 20;
        assertEquals(DropReason.BAD_HEADER, egress(wrap(q), 1472));
    }

    @Test
    void truncated() {
        byte[] p = hex(FLANNEL_IN + PAYLOAD);
        p[3] = 41; // claims 41 bytes, 40 present
        assertEquals(DropReason.TRUNCATED, egress(wrap(p), 1472));
        assertEquals(DropReason.TRUNCATED, ENCAP.decapsulate(wrap(p), 1472));
    }

    @Test
    void oversizeCountsTheBytesNotTheHeader() {
        assertEquals(DropReason.OVERSIZE, egress(wrap(hex(FLANNEL_IN + PAYLOAD)), 39));
        assertNull(egress(wrap(hex(FLANNEL_IN + PAYLOAD)), 40));
        // 2000 bytes received with a 40-byte total length is not "padding" to trim into acceptance.
        byte[] big = Arrays.copyOf(hex(FLANNEL_IN + PAYLOAD), 2000);
        assertEquals(DropReason.OVERSIZE, ENCAP.decapsulate(wrap(big), 1472));
    }

    @Test
    void paddingIsTrimmed() {
        byte[] padded = Arrays.copyOf(hex(FLANNEL_IN + PAYLOAD), 46);
        ByteBuffer b = ByteBuffer.allocate(64);
        b.position(3);
        b.put(padded);
        b.limit(3 + 46).position(3);
        assertNull(egress(b, 1472));
        assertEquals(3, b.position());
        assertEquals(3 + 40, b.limit());
        assertEquals(hex(hex(FLANNEL_OUT + PAYLOAD)), hex(remaining(b)));
    }

    @Test
    void dropsLeaveTheBytesAlone() {
        byte[] p = hex(FLANNEL_IN + PAYLOAD);
        p[3] = 41;
        ByteBuffer b = wrap(p);
        egress(b, 1472);
        assertArrayEquals(p, b.array());
    }

    @Test
    void ttlEdges() {
        byte[] ttl2 = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 5), 17, 2, 40);
        ByteBuffer b = wrap(ttl2);
        assertNull(egress(b, 1472));
        assertEquals(1, b.get(8));
        assertEquals(DropReason.TTL_EXPIRED, ENCAP.decapsulate(b, 1472), "TTL 1 reaches 0");
        assertEquals(1, b.get(8), "a dropped packet keeps its TTL");

        byte[] ttl0 = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 5), 17, 0, 40);
        assertEquals(DropReason.TTL_EXPIRED, egress(wrap(ttl0), 1472), "no wrap to 255");
        assertEquals(DropReason.TTL_EXPIRED, ENCAP.decapsulate(wrap(ttl0), 1472));

        byte[] ttl255 = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 5), 6, 255, 40);
        ByteBuffer c = wrap(ttl255);
        assertNull(egress(c, 1472));
        assertArrayEquals(Packets.withTtlDecremented(ttl255, 1), remaining(c));
    }

    @Test
    void incrementalChecksumEqualsFullRecomputationOnRandomHeaders() {
        Random random = new Random(1624);
        for (int n = 0; n < 20_000; n++) {
            int ihl = 5 + random.nextInt(11);
            int total = ihl * 4 + random.nextInt(64);
            byte[] p = new byte[total];
            random.nextBytes(p);
            p[0] = (byte) (0x40 | ihl);
            p[2] = (byte) (total >>> 8);
            p[3] = (byte) total;
            p[8] = (byte) (2 + random.nextInt(254));
            Packets.setHeaderChecksum(p, 0);
            ByteBuffer b = wrap(p);
            assertNull(egress(b, 1472));
            assertArrayEquals(Packets.withTtlDecremented(p, 1), remaining(b), () -> "header " + hex(p));
        }
    }

    @Test
    void incrementalChecksumIsRightForEveryChecksumValue() {
        // The checksum is a bijection of the ID field, so 65536 IDs walk every checksum value, including the
        // one's complement edge cases 0x0000, 0xfeff, 0xff00 and 0xffff.
        byte[] p = hex(FLANNEL_IN + PAYLOAD);
        boolean[] seen = new boolean[65536];
        for (int id = 0; id < 65536; id++) {
            p[4] = (byte) (id >>> 8);
            p[5] = (byte) id;
            Packets.setHeaderChecksum(p, 0);
            seen[(p[10] & 0xff) << 8 | p[11] & 0xff] = true;
            ByteBuffer b = wrap(p);
            assertNull(egress(b, 1472));
            byte[] out = remaining(b);
            assertTrue(Packets.headerChecksumOk(out, 0), () -> "id " + Integer.toHexString(p[4] << 8 | p[5]));
            assertArrayEquals(Packets.withTtlDecremented(p, 1), out);
        }
        int count = 0;
        for (boolean s : seen) {
            count += s ? 1 : 0;
        }
        assertEquals(65535, count, "every checksum but 0xffff (a computed checksum is never -0) was exercised");
    }
}
