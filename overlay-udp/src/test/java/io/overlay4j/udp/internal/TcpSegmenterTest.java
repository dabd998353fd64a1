package io.overlay4j.udp.internal;

import static io.overlay4j.udp.testing.TcpPackets.ACK;
import static io.overlay4j.udp.testing.TcpPackets.CWR;
import static io.overlay4j.udp.testing.TcpPackets.FIN;
import static io.overlay4j.udp.testing.TcpPackets.PSH;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.udp.internal.TcpSegmenter.Result;
import io.overlay4j.udp.testing.Packets;
import io.overlay4j.udp.testing.TcpPackets;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class TcpSegmenterTest {
    private static final int MTU = 1472;
    private static final int HDR = 20 + 32; // IPv4 + TCP with timestamps
    private static final int MSS = MTU - HDR;
    private static final int NEEDS_CSUM = VirtioNetHeader.FLAG_NEEDS_CSUM;
    private static final int TCPV4 = VirtioNetHeader.GSO_TCPV4;

    private final TcpSegmenter segmenter = new TcpSegmenter(MTU);

    /** A super-packet as the kernel hands it over: pseudo-header partial sum in the TCP checksum field. */
    private static byte[] superPacket(TcpPackets.Spec spec, int gsoType, int gsoSize) {
        byte[] p = spec.build();
        TcpPackets.putShort(p, 36, TcpPackets.pseudoHeaderPartial(p, 0));
        return TcpPackets.concat(TcpPackets.vnet(NEEDS_CSUM, gsoType, HDR, gsoSize, 20, 16), p);
    }

    private static ByteBuffer direct(byte[] b, int offset) {
        // Little-endian on purpose: the code must not depend on the buffer's byte order.
        return ByteBuffer.allocateDirect(offset + b.length).order(ByteOrder.LITTLE_ENDIAN).put(offset, b);
    }

    @Test
    void splitsA64KiBSuperPacket() {
        TcpPackets.Spec spec = new TcpPackets.Spec();
        spec.payload = 65535 - HDR;
        spec.flags = CWR | ACK | PSH | FIN;
        spec.id = 0xfff0; // wraps within the run
        spec.seq = 0xffff0000; // so does the sequence number
        byte[] in = superPacket(spec, TCPV4 | VirtioNetHeader.GSO_ECN, MSS);
        ByteBuffer src = direct(in, 7);
        ByteBuffer dst = ByteBuffer.allocateDirect(70_000);

        assertEquals(Result.SEGMENTED, segmenter.segment(src, 7, in.length, dst, 3));
        int count = (spec.payload + MSS - 1) / MSS;
        assertEquals(47, count);
        assertEquals(count, segmenter.segmentCount());
        assertEquals(MTU, segmenter.segmentLength());
        int lastPayload = spec.payload - (count - 1) * MSS;
        assertEquals(HDR + lastPayload, segmenter.lastSegmentLength());
        assertEquals(3, segmenter.packetOffset());
        assertEquals(count * HDR + spec.payload, segmenter.outputLength());
        checkSegments(spec, dst, 3, count, MSS, lastPayload);
    }

    @Test
    void splitsIntoThreeSegmentsFromAHeapBuffer() {
        TcpPackets.Spec spec = new TcpPackets.Spec();
        spec.payload = 2 * 1000 + 123;
        spec.flags = ACK | PSH;
        byte[] in = superPacket(spec, TCPV4, 1000);
        ByteBuffer src = ByteBuffer.wrap(in);
        ByteBuffer dst = ByteBuffer.allocate(3 * HDR + spec.payload);

        assertEquals(Result.SEGMENTED, segmenter.segment(src, 0, in.length, dst, 0));
        assertEquals(3, segmenter.segmentCount());
        assertEquals(HDR + 1000, segmenter.segmentLength());
        assertEquals(HDR + 123, segmenter.lastSegmentLength());
        checkSegments(spec, dst, 0, 3, 1000, 123);
        assertArrayEquals(in, Arrays.copyOf(src.array(), in.length), "the source is left alone");
    }

    @Test
    void exactMultipleGivesEqualSegmentsAndOneSegmentStaysOne() {
        TcpPackets.Spec spec = new TcpPackets.Spec();
        spec.payload = 4 * 500;
        byte[] in = superPacket(spec, TCPV4, 500);
        ByteBuffer dst = ByteBuffer.allocateDirect(65536);
        assertEquals(Result.SEGMENTED, segmenter.segment(direct(in, 0), 0, in.length, dst, 0));
        assertEquals(4, segmenter.segmentCount());
        assertEquals(segmenter.segmentLength(), segmenter.lastSegmentLength());
        checkSegments(spec, dst, 0, 4, 500, 500);

        spec.payload = 300;
        in = superPacket(spec, TCPV4, 500);
        assertEquals(Result.SEGMENTED, segmenter.segment(direct(in, 0), 0, in.length, dst, 0));
        assertEquals(1, segmenter.segmentCount());
        assertEquals(HDR + 300, segmenter.lastSegmentLength());
        checkSegments(spec, dst, 0, 1, 500, 300);
    }

    /** Checks every segment against the super-packet's spec, with the independent test implementation. */
    private static void checkSegments(TcpPackets.Spec spec, ByteBuffer dst, int offset, int count, int mss,
                                      int lastPayload) {
        byte[] original = spec.build();
        int at = offset;
        for (int i = 0; i < count; i++) {
            boolean last = i == count - 1;
            int payload = last ? lastPayload : mss;
            byte[] s = new byte[HDR + payload];
            dst.get(at, s);
            String what = "segment " + i + " of " + count;
            assertEquals(s.length, TcpPackets.getShort(s, 2), what + ": total length");
            assertEquals((spec.id + i) & 0xffff, TcpPackets.getShort(s, 4), what + ": IP ID");
            assertTrue(Packets.headerChecksumOk(s, 0), what + ": IP header checksum");
            assertEquals(spec.seq + i * mss, TcpPackets.getInt(s, 24), what + ": sequence number");
            int flags = spec.flags;
            if (!last) {
                flags &= ~(FIN | PSH);
            }
            if (i > 0) {
                flags &= ~CWR;
            }
            assertEquals(flags, s[33] & 0xff, what + ": TCP flags");
            assertTrue(TcpPackets.l4ChecksumOk(s, 0), what + ": TCP checksum");
            assertEquals(TcpPackets.tcpChecksum(s, 0), TcpPackets.getShort(s, 36), what);
            // Everything else in the headers is the original's: TOS, flags, TTL, addresses, ports, ack, options.
            byte[] expected = Arrays.copyOf(original, HDR);
            expected[2] = s[2];
            expected[3] = s[3];
            expected[4] = s[4];
            expected[5] = s[5];
            expected[10] = s[10];
            expected[11] = s[11];
            System.arraycopy(s, 24, expected, 24, 4);
            expected[33] = s[33];
            expected[36] = s[36];
            expected[37] = s[37];
            assertArrayEquals(expected, Arrays.copyOf(s, HDR), what + ": other header bytes");
            for (int k = 0; k < payload; k++) {
                if (s[HDR + k] != TcpPackets.streamByte(spec.seq + i * mss + k)) {
                    throw new AssertionError(what + ": payload byte " + k);
                }
            }
            at += s.length;
        }
    }

    @Test
    void needsCsumOnlyPacketIsFinishedInPlace() {
        TcpPackets.Spec spec = new TcpPackets.Spec();
        spec.payload = 777;
        byte[] p = spec.build();
        int good = TcpPackets.getShort(p, 36);
        TcpPackets.putShort(p, 36, TcpPackets.pseudoHeaderPartial(p, 0));
        byte[] in = TcpPackets.concat(TcpPackets.vnet(NEEDS_CSUM, 0, 0, 0, 20, 16), p);
        ByteBuffer src = direct(in, 5);
        ByteBuffer dst = ByteBuffer.allocateDirect(16);

        assertEquals(Result.CHECKSUM_COMPLETED, segmenter.segment(src, 5, in.length, dst, 0));
        assertEquals(1, segmenter.segmentCount());
        assertEquals(5 + 10, segmenter.packetOffset());
        assertEquals(p.length, segmenter.segmentLength());
        assertEquals(p.length, segmenter.outputLength());
        byte[] out = new byte[p.length];
        src.get(15, out);
        assertEquals(good, TcpPackets.getShort(out, 36));
        assertTrue(TcpPackets.l4ChecksumOk(out, 0));

        // UDP, odd length (csum_offset 6), from the kernel vector with its checksum replaced by the partial sum.
        byte[] udp = ChecksumsTest.KERNEL_UDP.clone();
        TcpPackets.putShort(udp, 26, TcpPackets.pseudoHeaderPartial(udp, 0));
        in = TcpPackets.concat(TcpPackets.vnet(NEEDS_CSUM, 0, 0, 0, 20, 6), udp);
        src = ByteBuffer.wrap(in);
        assertEquals(Result.CHECKSUM_COMPLETED, segmenter.segment(src, 0, in.length, dst, 0));
        assertArrayEquals(TcpPackets.concat(Arrays.copyOf(in, 10), ChecksumsTest.KERNEL_UDP), src.array());
    }

    @Test
    void plainPacketPassesThroughUntouched() {
        byte[] in = TcpPackets.concat(new byte[10], new TcpPackets.Spec().build());
        in[10 + 36] ^= 1; // even a bad checksum: not ours to judge
        ByteBuffer src = ByteBuffer.wrap(in.clone());
        assertEquals(Result.PASSED_THROUGH, segmenter.segment(src, 0, in.length, ByteBuffer.allocate(0), 0));
        assertEquals(10, segmenter.packetOffset());
        assertEquals(in.length - 10, segmenter.segmentLength());
        assertArrayEquals(in, src.array());
    }

    @Test
    void malformedInputIsRefusedWithAReason() {
        TcpPackets.Spec spec = new TcpPackets.Spec();
        spec.payload = 3000;
        ByteBuffer dst = ByteBuffer.allocateDirect(65536);

        assertEquals(Result.RUNT, run(new byte[10], dst));
        assertEquals(Result.RUNT, run(new byte[3], dst));
        assertEquals(Result.NOT_IPV4, run(superPacket(spec, VirtioNetHeader.GSO_TCPV6, 1000), dst), "IPv6 for now");
        assertEquals(Result.NOT_UDP, run(superPacket(spec, VirtioNetHeader.GSO_UDP_L4, 1000), dst));
        assertEquals(Result.UNSUPPORTED_GSO_TYPE, run(superPacket(spec, 3, 1000), dst));
        assertEquals(Result.BAD_GSO_SIZE, run(superPacket(spec, TCPV4, 0), dst));
        assertEquals(Result.OVERSIZE, run(superPacket(spec, TCPV4, MSS + 1), dst), "segments above the MTU");
        assertEquals(Result.SEGMENTED, run(superPacket(spec, TCPV4, MSS), dst));

        byte[] v6 = superPacket(spec, TCPV4, 1000);
        v6[10] = 0x65;
        assertEquals(Result.NOT_IPV4, run(v6, dst));
        byte[] ihl = superPacket(spec, TCPV4, 1000);
        ihl[10] = 0x44;
        assertEquals(Result.BAD_IP_HEADER, run(ihl, dst));
        byte[] fragment = superPacket(spec, TCPV4, 1000);
        fragment[10 + 6] |= 0x20; // MF
        assertEquals(Result.BAD_IP_HEADER, run(fragment, dst));
        byte[] udp = superPacket(spec, TCPV4, 1000);
        udp[10 + 9] = 17;
        assertEquals(Result.NOT_TCP, run(udp, dst));
        byte[] doff = superPacket(spec, TCPV4, 1000);
        doff[10 + 32] = 0x40;
        assertEquals(Result.BAD_TCP_HEADER, run(doff, dst));
        byte[] noPayload = superPacket(spec, TCPV4, 1000);
        assertEquals(Result.BAD_GSO_SIZE, run(Arrays.copyOf(noPayload, 10 + HDR), dst, HDR), "headers only");
        byte[] truncated = superPacket(spec, TCPV4, 1000);
        assertEquals(Result.TRUNCATED, run(Arrays.copyOf(truncated, truncated.length - 1), dst));
        byte[] csumStart = superPacket(spec, TCPV4, 1000);
        byte[] badVnet = TcpPackets.vnet(NEEDS_CSUM, TCPV4, HDR, 1000, 0, 16);
        System.arraycopy(badVnet, 0, csumStart, 0, 10);
        assertEquals(Result.BAD_CHECKSUM_FIELDS, run(csumStart, dst));
        byte[] csumOffset = superPacket(spec, TCPV4, 1000);
        System.arraycopy(TcpPackets.vnet(NEEDS_CSUM, TCPV4, HDR, 1000, 20, 6), 0, csumOffset, 0, 10);
        assertEquals(Result.BAD_CHECKSUM_FIELDS, run(csumOffset, dst));

        byte[] plain = TcpPackets.concat(TcpPackets.vnet(NEEDS_CSUM, 0, 0, 0, 20, 16), spec.build());
        System.arraycopy(TcpPackets.vnet(NEEDS_CSUM, 0, 0, 0, plain.length - 10 - 17, 16), 0, plain, 0, 10);
        assertEquals(Result.BAD_CHECKSUM_FIELDS, run(plain, dst), "checksum field beyond the packet");
        System.arraycopy(TcpPackets.vnet(NEEDS_CSUM, 0, 0, 0, 10, 16), 0, plain, 0, 10);
        assertEquals(Result.BAD_CHECKSUM_FIELDS, run(plain, dst), "csum_start inside the IP header");

        assertEquals(Result.NO_ROOM, run(superPacket(spec, TCPV4, 1000), ByteBuffer.allocate(3 * HDR + 2999)));
        assertEquals(Result.SEGMENTED, run(superPacket(spec, TCPV4, 1000), ByteBuffer.allocate(3 * HDR + 3000)));

        byte[] huge = new byte[10 + 65536];
        System.arraycopy(superPacket(spec, TCPV4, 1000), 0, huge, 0, 10 + 20 + 32 + 3000);
        assertEquals(Result.OVERSIZE, run(huge, dst), "more than 64 KiB");
        assertTrue(Result.OVERSIZE.isDrop());
        assertFalse(Result.SEGMENTED.isDrop());
        assertEquals(null, Result.PASSED_THROUGH.dropReason());
        assertEquals(io.overlay4j.DropReason.BAD_HEADER, Result.BAD_CHECKSUM_FIELDS.dropReason());
        for (Result r : Result.values()) {
            assertEquals(r.ordinal() >= Result.RUNT.ordinal(), r.isDrop(), r.name());
        }
        assertEquals(0, segmenter.segmentCount(), "nothing produced after a refusal");
    }

    private Result run(byte[] in, ByteBuffer dst) {
        return segmenter.segment(ByteBuffer.wrap(in), 0, in.length, dst, 0);
    }

    private Result run(byte[] in, ByteBuffer dst, int totalLength) {
        TcpPackets.putShort(in, 12, totalLength);
        return run(in, dst);
    }

    @Test
    void allocatesNothingPerPacket() {
        TcpPackets.Spec spec = new TcpPackets.Spec();
        spec.payload = 65535 - HDR;
        byte[] in = superPacket(spec, TCPV4, MSS);
        ByteBuffer src = direct(in, 0);
        ByteBuffer dst = ByteBuffer.allocateDirect(70_000);
        byte[] small = TcpPackets.concat(TcpPackets.vnet(NEEDS_CSUM, 0, 0, 0, 20, 16), spec.copy().build());
        ByteBuffer single = direct(Arrays.copyOf(small, 10 + HDR + 100), 0);
        for (int i = 0; i < 3000; i++) {
            segmenter.segment(src, 0, in.length, dst, 0);
            segmenter.segment(single, 0, 10 + HDR + 100, dst, 0);
        }
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long before = mx.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < 1000; i++) {
            if (segmenter.segment(src, 0, in.length, dst, 0) != Result.SEGMENTED) {
                throw new AssertionError();
            }
            segmenter.segment(single, 0, 10 + HDR + 100, dst, 0);
        }
        long allocated = mx.getCurrentThreadAllocatedBytes() - before;
        assertTrue(allocated < 10_000, allocated + " bytes allocated for 1000 super-packets");
    }

    /** A UDP super-datagram (USO) as the kernel hands it over: IPv4 + UDP header + payload, partial checksum. */
    private static byte[] udpSuperDatagram(int payload, int gsoSize) {
        byte[] p = Packets.ipv4(Packets.addr(100, 96, 1, 2), Packets.addr(100, 96, 2, 3), 17, 64, 28 + payload);
        TcpPackets.putShort(p, 20, 5000);
        TcpPackets.putShort(p, 22, 8285);
        TcpPackets.putShort(p, 24, 8 + payload);
        for (int i = 0; i < payload; i++) {
            p[28 + i] = TcpPackets.streamByte(i);
        }
        TcpPackets.putShort(p, 26, TcpPackets.pseudoHeaderPartial(p, 0));
        return TcpPackets.concat(TcpPackets.vnet(NEEDS_CSUM, VirtioNetHeader.GSO_UDP_L4, 28, gsoSize, 20, 6), p);
    }

    @Test
    void splitsAUdpSuperDatagram() {
        byte[] in = udpSuperDatagram(2 * 1400 + 77, 1400);
        ByteBuffer dst = ByteBuffer.allocateDirect(65536);
        assertEquals(Result.SEGMENTED, segmenter.segment(direct(in, 1), 1, in.length, dst, 0));
        assertEquals(3, segmenter.segmentCount());
        assertEquals(28 + 1400, segmenter.segmentLength());
        assertEquals(28 + 77, segmenter.lastSegmentLength());
        int at = 0;
        for (int i = 0; i < 3; i++) {
            int payload = i == 2 ? 77 : 1400;
            byte[] s = new byte[28 + payload];
            dst.get(at, s);
            assertEquals(s.length, TcpPackets.getShort(s, 2), "total length");
            assertEquals(0x1234 + i, TcpPackets.getShort(s, 4), "IP ID");
            assertTrue(Packets.headerChecksumOk(s, 0));
            assertEquals(5000, TcpPackets.getShort(s, 20));
            assertEquals(8285, TcpPackets.getShort(s, 22));
            assertEquals(8 + payload, TcpPackets.getShort(s, 24), "UDP length");
            assertTrue(TcpPackets.l4ChecksumOk(s, 0), "UDP checksum of datagram " + i);
            for (int k = 0; k < payload; k++) {
                assertEquals(TcpPackets.streamByte(i * 1400 + k), s[28 + k]);
            }
            at += s.length;
        }

        byte[] badLength = udpSuperDatagram(3000, 1400);
        TcpPackets.putShort(badLength, 10 + 24, 3000);
        assertEquals(Result.BAD_UDP_HEADER, run(badLength, dst));
        assertEquals(Result.NOT_TCP, run(TcpPackets.concat(TcpPackets.vnet(0, TCPV4, 0, 1400, 0, 0),
                java.util.Arrays.copyOfRange(udpSuperDatagram(3000, 1400), 10, 10 + 3028)), dst));
        byte[] csumOffset = udpSuperDatagram(3000, 1400);
        csumOffset[8] = 16;
        csumOffset[9] = 0;
        assertEquals(Result.BAD_CHECKSUM_FIELDS, run(csumOffset, dst));
        assertEquals(Result.OVERSIZE, run(udpSuperDatagram(3000, MTU - 27), dst));
    }
}
