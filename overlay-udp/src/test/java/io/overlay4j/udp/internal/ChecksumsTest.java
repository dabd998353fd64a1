package io.overlay4j.udp.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.udp.testing.Packets;
import io.overlay4j.udp.testing.TcpPackets;
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

    /** RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2. */
    @Test
    void rfc1071Example() {
        byte[] data = Packets.hex("0001f203 f4f5f6f7");
        for (ByteBuffer b : buffers(data, 0)) {
            assertEquals(0xddf2, Checksums.fold(Checksums.sum(b, 0, 8)));
            assertEquals(0x220d, Checksums.checksum(b, 0, 8));
        }
        for (ByteBuffer b : buffers(data, 3)) {
            assertEquals(0xddf2, Checksums.fold(Checksums.sum(b, 3, 8)), "at an odd offset");
        }
    }

    /**
     * Packets the Linux kernel (6.18) checksummed: read from a TUN device without offloads in a scratch namespace,
     * a TCP SYN from 10.77.0.1:40000 to 10.77.1.2:8080 (with MSS, SACK-permitted, timestamps and window scale options)
     * and a 25-byte UDP datagram from 10.77.0.1:40001 to 10.77.1.2:8285.
     */
    static final byte[] KERNEL_TCP_SYN = Packets.hex("4500003c ade94000 40067736 0a4d0001 0a4d0102 9c401f90 c065f2d6"
            + "00000000 a002faf0 83670000 020405b4 0402080a 07003dfb 00000000 0103030a");
    static final byte[] KERNEL_UDP = Packets.hex("45000035 beaf4000 4011666c 0a4d0001 0a4d0102 9c41205d 0021f2db"
            + "6f766572 6c617934 6a206368 65636b73 756d2076 6563746f 72");

    @Test
    void kernelComputedTcpAndUdpChecksums() {
        for (int shift : new int[] {0, 1, 6}) {
            checkKernelPacket(KERNEL_TCP_SYN, shift, 0x7736, 16, 0x8367);
            checkKernelPacket(KERNEL_UDP, shift, 0x666c, 6, 0xf2db);
        }
    }

    private static void checkKernelPacket(byte[] packet, int shift, int ipChecksum, int l4Field, int l4Checksum) {
        for (ByteBuffer b : buffers(packet, shift)) {
            assertTrue(Ipv4Header.isChecksumValid(b, shift));
            assertEquals(ipChecksum, Ipv4Header.computeChecksum(b, shift));
            int l4Length = packet.length - 20;
            long pseudo = Checksums.pseudoHeaderSum(b, shift, l4Length);
            assertEquals(0xffff, Checksums.fold(pseudo + Checksums.sum(b, shift + 20, l4Length)), "verifies");
            b.put(shift + 20 + l4Field, (byte) 0).put(shift + 20 + l4Field + 1, (byte) 0);
            assertEquals(l4Checksum, Checksums.finish(pseudo + Checksums.sum(b, shift + 20, l4Length)));
            assertEquals(l4Checksum, Checksums.finishUdp(pseudo + Checksums.sum(b, shift + 20, l4Length)));
        }
    }

    @Test
    void pseudoHeaderSumMatchesTheIndependentOne() {
        Random random = new Random(793);
        for (int n = 0; n < 1000; n++) {
            TcpPackets.Spec spec = new TcpPackets.Spec();
            spec.src = random.nextInt();
            spec.dst = random.nextInt();
            spec.payload = random.nextInt(1400);
            byte[] p = spec.build();
            ByteBuffer b = ByteBuffer.wrap(p);
            int l4 = p.length - 20;
            assertEquals(TcpPackets.pseudoHeaderPartial(p, 0), Checksums.fold(Checksums.pseudoHeaderSum(b, 0, l4)));
            assertEquals(Checksums.fold(Checksums.pseudoHeaderSum(b, 0, l4)),
                    Checksums.fold(Checksums.pseudoHeaderSum(spec.src, spec.dst, 6, l4)));
            assertTrue(TcpHeader.isChecksumValid(b, 0, 20, p.length));
            p[p.length - 1] ^= 0x10;
            assertFalse(TcpHeader.isChecksumValid(b, 0, 20, p.length));
        }
    }

    /** Lengths 0..65535 at odd and even offsets, random and all-ones data, against the 16-bit reference loop. */
    @Test
    void agreesWithTheReferenceUpTo64KiB() {
        Random random = new Random(65535);
        byte[] data = new byte[65535 + 16];
        for (int n = 0; n < 400; n++) {
            int len = n < 64 ? n : n < 72 ? 65535 - (n - 64) : random.nextInt(65536);
            int off = random.nextInt(16);
            if (n % 5 == 0) {
                java.util.Arrays.fill(data, (byte) 0xff);
            } else {
                random.nextBytes(data);
            }
            int expected = Packets.referenceChecksum(data, off, len);
            for (ByteBuffer b : buffers(data, 0)) {
                assertEquals(expected, Checksums.checksum(b, off, len), "len " + len + " off " + off + " " + b);
                assertTrue(Checksums.sum(b, off, len) <= 0xffff, "sum is folded");
            }
        }
    }

    @Test
    void foldAndFinish() {
        assertEquals(0, Checksums.fold(0));
        assertEquals(0xffff, Checksums.fold(0xffff));
        assertEquals(1, Checksums.fold(0x10000));
        assertEquals(0xffff, Checksums.fold(0xfffeL + 1));
        assertEquals(0x2, Checksums.fold(0x1_0000_0001L));
        assertEquals(0xffff, Checksums.fold(0xffff_ffffL));
        assertEquals(0xfffe, Checksums.finish(1));
        assertEquals(0, Checksums.finish(0xffff));
        assertEquals(0xffff, Checksums.finishUdp(0xffff));
    }

    /** The data in heap and direct buffers of both byte orders, copied from index {@code shift}. */
    private static ByteBuffer[] buffers(byte[] data, int shift) {
        ByteBuffer[] all = new ByteBuffer[4];
        for (int i = 0; i < 4; i++) {
            ByteBuffer b = i < 2 ? ByteBuffer.allocate(shift + data.length)
                    : ByteBuffer.allocateDirect(shift + data.length);
            b.order(i % 2 == 0 ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN);
            b.put(shift, data);
            all[i] = b;
        }
        return all;
    }
}
