package io.overlay4j.udp.internal;

import static io.overlay4j.udp.testing.Packets.addr;
import static io.overlay4j.udp.testing.Packets.hex;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.udp.testing.Packets;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class IcmpUnreachableTest {
    /** flannel-facts §3.6: reply to a 48-byte UDP offender 10.5.1.2 → 10.9.0.1, flannel0 at 10.5.1.0. */
    private static final String FLANNEL_REPLY = "45000038 00000000 08019cba 0a050100 0a050102 0300a09f 00000000 "
            + "45000030 12344000 40111379 0a050102 0a090001 14151617 18191a1b";
    private static final int FLANNEL0 = addr(10, 5, 1, 0);

    private static byte[] offender() {
        return Packets.ipv4(addr(10, 5, 1, 2), addr(10, 9, 0, 1), 17, 64, 48);
    }

    private static byte[] reply(byte[] offender, int offset, int length) {
        ByteBuffer src = ByteBuffer.allocateDirect(offset + offender.length);
        src.position(offset);
        src.put(offender);
        ByteBuffer dst = ByteBuffer.allocate(7 + IcmpUnreachable.MAX_LENGTH);
        int n = IcmpUnreachable.write(src, offset, length, dst, 7, FLANNEL0);
        return Arrays.copyOfRange(dst.array(), 7, 7 + n);
    }

    @Test
    void matchesFlannelByteForByte() {
        byte[] offender = offender();
        assertEquals("45000030 12344000 40111379 0a050102 0a090001", hex(Arrays.copyOf(offender, 20)));
        assertEquals(FLANNEL_REPLY, hex(reply(offender, 0, offender.length)));
        assertEquals(FLANNEL_REPLY, hex(reply(offender, 13, offender.length)), "at an offset");
    }

    @Test
    void replyChecksumsVerify() {
        byte[] r = reply(offender(), 0, 48);
        assertTrue(Packets.headerChecksumOk(r, 0));
        assertEquals(0, Packets.referenceChecksum(r, 20, r.length - 20));
    }

    @Test
    void noReplyToIcmp() {
        byte[] icmp = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 9, 0, 1), 1, 64, 48);
        assertEquals(0, reply(icmp, 0, 48).length);
    }

    @Test
    void noReplyToNonFirstFragmentsButToFirstOnes() {
        byte[] frag = offender();
        frag[6] = 0x00;
        frag[7] = 0x10; // offset 16 × 8 bytes
        Packets.setHeaderChecksum(frag, 0);
        assertEquals(0, reply(frag, 0, 48).length);
        byte[] first = offender();
        first[6] = 0x20; // MF set, offset 0
        Packets.setHeaderChecksum(first, 0);
        assertEquals(56, reply(first, 0, 48).length);
    }

    @Test
    void ihl15IsAnswered() {
        byte[] p = new byte[60 + 12];
        byte[] base = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 9, 0, 1), 6, 64, 20);
        System.arraycopy(base, 0, p, 0, 20);
        p[0] = 0x4f;
        p[2] = 0;
        p[3] = (byte) p.length;
        for (int i = 20; i < p.length; i++) {
            p[i] = (byte) (0xa0 + i);
        }
        Packets.setHeaderChecksum(p, 0);
        byte[] r = reply(p, 0, p.length);
        assertEquals(20 + 8 + 60 + 8, r.length);
        assertEquals(IcmpUnreachable.MAX_LENGTH, r.length);
        assertEquals(r.length, (r[2] & 0xff) << 8 | r[3] & 0xff);
        assertEquals(hex(Arrays.copyOf(p, 68)), hex(Arrays.copyOfRange(r, 28, 96)));
        assertEquals(0, Packets.referenceChecksum(r, 20, r.length - 20));
        assertTrue(Packets.headerChecksumOk(r, 0));
    }

    @Test
    void shortOffenderQuotesOnlyWhatIsThere() {
        byte[] p = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 9, 0, 1), 17, 64, 23);
        byte[] r = reply(p, 0, 23);
        assertEquals(28 + 23, r.length);
        assertEquals(hex(p), hex(Arrays.copyOfRange(r, 28, r.length)));
        assertEquals(0, Packets.referenceChecksum(r, 20, r.length - 20), "odd-length ICMP checksum");
    }

    @Test
    void noReplyToMalformedOrUnanswerable() {
        byte[] p = offender();
        assertEquals(0, reply(Arrays.copyOf(p, 19), 0, 19).length, "runt");
        byte[] v6 = p.clone();
        v6[0] = 0x60;
        assertEquals(0, reply(v6, 0, 48).length, "not IPv4");
        byte[] ihl4 = p.clone();
        ihl4[0] = 0x44;
        assertEquals(0, reply(ihl4, 0, 48).length, "IHL 4");
        byte[] ihl15 = p.clone();
        ihl15[0] = 0x4f;
        assertEquals(0, reply(ihl15, 0, 48).length, "header beyond the bytes");
        for (int source : new int[] {0, addr(0, 1, 2, 3), addr(224, 0, 0, 1), addr(240, 0, 0, 1), -1}) {
            byte[] q = Packets.ipv4(source, addr(10, 9, 0, 1), 17, 64, 48);
            assertEquals(0, reply(q, 0, 48).length, () -> "source " + Integer.toHexString(source));
        }
    }
}
