package io.overlay4j.udp.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.udp.testing.Packets;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ChecksumsTest {
    @Test
    void agreesWithTheReferenceForEveryLengthOffsetAndByteOrder() {
        Random random = new Random(1071);
        for (int n = 0; n < 5000; n++) {
            int len = random.nextInt(200);
            int off = random.nextInt(8);
            byte[] data = new byte[off + len];
            random.nextBytes(data);
            if (n % 7 == 0) {
                java.util.Arrays.fill(data, (byte) 0xff);
            }
            ByteBuffer b = (n % 2 == 0 ? ByteBuffer.wrap(data) : ByteBuffer.allocateDirect(data.length).put(data))
                    .order(n % 3 == 0 ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN);
            assertEquals(Packets.referenceChecksum(data, off, len), Checksums.checksum(b, off, len),
                    "len " + len + " off " + off);
        }
    }

    @Test
    void headerHelpers() {
        byte[] p = Packets.hex("45000028 12344000 40111181 0a050102 0a050205");
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(4, Ipv4Header.version(b, 0));
        assertEquals(20, Ipv4Header.headerLength(b, 0));
        assertEquals(40, Ipv4Header.totalLength(b, 0));
        assertEquals(0, Ipv4Header.fragmentOffset(b, 0));
        assertEquals(0x40, Ipv4Header.ttl(b, 0));
        assertEquals(17, Ipv4Header.protocol(b, 0));
        assertEquals(0x1181, Ipv4Header.checksum(b, 0));
        assertEquals(0x0a050102, Ipv4Header.source(b, 0));
        assertEquals(0x0a050205, Ipv4Header.destination(b, 0));
        assertEquals(0x1181, Ipv4Header.computeChecksum(b, 0));
        assertTrue(Ipv4Header.isChecksumValid(b, 0));
        Ipv4Header.decrementTtl(b, 0);
        assertEquals(0x1281, Ipv4Header.checksum(b, 0));
        Ipv4Header.incrementTtl(b, 0);
        assertEquals(0x1181, Ipv4Header.checksum(b, 0));
        assertEquals(0x40, Ipv4Header.ttl(b, 0));
        b.put(11, (byte) 0x82);
        assertFalse(Ipv4Header.isChecksumValid(b, 0));
        Ipv4Header.updateChecksum(b, 0);
        assertEquals(0x1181, Ipv4Header.checksum(b, 0));
    }
}
