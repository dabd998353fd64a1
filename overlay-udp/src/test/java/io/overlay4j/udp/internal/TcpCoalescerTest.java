package io.overlay4j.udp.internal;

import static io.overlay4j.udp.testing.TcpPackets.ACK;
import static io.overlay4j.udp.testing.TcpPackets.FIN;
import static io.overlay4j.udp.testing.TcpPackets.PSH;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.udp.testing.Packets;
import io.overlay4j.udp.testing.TcpPackets;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class TcpCoalescerTest {
    private static final int HDR = 20 + 32;

    /** TCP only, as on a kernel before 6.2 (UDP merging has its own tests below). */
    private final TcpCoalescer coalescer = new TcpCoalescer(64, 128, 512 * 1024);

    /** A frame as the sink saw it. */
    private record Frame(byte[] vnet, byte[] packet) {
        int flags() {
            return vnet[0];
        }

        int gsoType() {
            return vnet[1];
        }

        boolean plain() {
            return Arrays.equals(vnet, new byte[10]);
        }
    }

    /** Offers each packet (from a little-endian direct buffer at an odd offset) and flushes. */
    private List<Frame> coalesce(byte[]... packets) {
        for (byte[] p : packets) {
            ByteBuffer b = ByteBuffer.allocateDirect(p.length + 3).order(ByteOrder.LITTLE_ENDIAN).put(3, p);
            assertTrue(coalescer.offer(b, 3, p.length));
        }
        assertEquals(packets.length, coalescer.pendingPackets());
        List<Frame> frames = new ArrayList<>();
        int n = coalescer.flush((buf, offset, length, frameCount, frameBytes) -> {
            byte[] f = new byte[length];
            buf.get(offset, f);
            frames.add(new Frame(Arrays.copyOf(f, 10), Arrays.copyOfRange(f, 10, length)));
        });
        assertEquals(frames.size(), n);
        assertEquals(0, coalescer.pendingPackets());
        return frames;
    }

    /** Consecutive segments of one flow: {@code sizes[i]} payload bytes each, flags ACK (+ extra on the last). */
    private static byte[][] stream(TcpPackets.Spec base, int lastFlags, int... sizes) {
        byte[][] out = new byte[sizes.length][];
        int seq = base.seq;
        for (int i = 0; i < sizes.length; i++) {
            TcpPackets.Spec s = base.copy();
            s.seq = seq;
            s.id = base.id + i;
            s.payload = sizes[i];
            s.flags = i == sizes.length - 1 ? ACK | lastFlags : ACK;
            out[i] = s.build();
            seq += sizes[i];
        }
        return out;
    }

    /** Checks a merged frame against the single packet that carries the same stream bytes. */
    private static void assertMerged(Frame f, TcpPackets.Spec base, int gsoSize, int payload, int flags) {
        assertEquals(VirtioNetHeader.FLAG_NEEDS_CSUM, f.flags());
        assertEquals(VirtioNetHeader.GSO_TCPV4, f.gsoType());
        assertEquals(HDR, TcpPackets.getHost(f.vnet, 2), "hdr_len");
        assertEquals(gsoSize, TcpPackets.getHost(f.vnet, 4), "gso_size");
        assertEquals(20, TcpPackets.getHost(f.vnet, 6), "csum_start");
        assertEquals(16, TcpPackets.getHost(f.vnet, 8), "csum_offset");

        TcpPackets.Spec whole = base.copy();
        whole.payload = payload;
        whole.flags = flags;
        byte[] expected = whole.build();
        int fullChecksum = TcpPackets.getShort(expected, 36);
        TcpPackets.putShort(expected, 36, TcpPackets.pseudoHeaderPartial(expected, 0));
        assertArrayEquals(expected, f.packet, "headers (ID of the first, fixed length and IP checksum) and payload");
        assertTrue(Packets.headerChecksumOk(f.packet, 0));

        // Complete the checksum as the kernel does for NEEDS_CSUM: sum from csum_start to the end, complement.
        byte[] completed = f.packet.clone();
        int c = Packets.referenceChecksum(completed, 20, completed.length - 20);
        assertEquals(fullChecksum, c, "completed TCP checksum equals the full computation");
        TcpPackets.putShort(completed, 36, c);
        assertTrue(TcpPackets.l4ChecksumOk(completed, 0));
    }

    @Test
    void mergesThreeAdjacentSegments() {
        TcpPackets.Spec base = new TcpPackets.Spec();
        List<Frame> frames = coalesce(stream(base, PSH, 1000, 1000, 500));
        assertEquals(1, frames.size());
        assertMerged(frames.get(0), base, 1000, 2500, ACK | PSH);
    }

    @Test
    void mergesUpTo64KiBThenStartsAnotherItem() {
        TcpPackets.Spec base = new TcpPackets.Spec();
        int[] sizes = new int[60];
        Arrays.fill(sizes, 1400);
        byte[][] packets = stream(base, 0, sizes);
        List<Frame> frames = coalesce(packets);
        int perItem = (65535 - HDR) / 1400; // 46
        assertEquals(2, frames.size());
        assertMerged(frames.get(0), base, 1400, perItem * 1400, ACK);
        TcpPackets.Spec second = base.copy();
        second.seq = base.seq + perItem * 1400;
        second.id = base.id + perItem;
        assertMerged(frames.get(1), second, 1400, (60 - perItem) * 1400, ACK);
    }

    @Test
    void aSequenceGapPreventsTheMerge() {
        byte[][] s = stream(new TcpPackets.Spec(), 0, 1000, 1000, 1000);
        List<Frame> frames = coalesce(s[0], s[2]);
        assertUnmerged(frames, s[0], s[2]);
        frames = coalesce(s[1], s[0]); // reordered: never prepended
        assertUnmerged(frames, s[1], s[0]);
    }

    @Test
    void nothingFollowsAPushOrAShortSegment() {
        TcpPackets.Spec base = new TcpPackets.Spec();
        byte[][] s = stream(base, 0, 1000, 1000, 1000);
        byte[] pushed = s[0].clone();
        pushed[33] = (byte) (ACK | PSH);
        pushed[36] = 0;
        pushed[37] = 0;
        TcpPackets.putShort(pushed, 36, TcpPackets.tcpChecksum(pushed, 0));
        assertUnmerged(coalesce(pushed, s[1]), pushed, s[1]);

        byte[][] shortMiddle = stream(base, 0, 1000, 500, 1000);
        List<Frame> frames = coalesce(shortMiddle);
        assertEquals(2, frames.size());
        assertMerged(frames.get(0), base, 1000, 1500, ACK);
        assertTrue(frames.get(1).plain());
        assertArrayEquals(shortMiddle[2], frames.get(1).packet);

        byte[][] longer = stream(base, 0, 500, 1000);
        assertUnmerged(coalesce(longer), longer);
    }

    @Test
    void badChecksumsAreNeverMerged() {
        byte[][] s = stream(new TcpPackets.Spec(), 0, 1000, 1000);
        byte[] badIp = s[1].clone();
        badIp[5] ^= 1; // IP IDs are not compared, but the header checksum no longer matches
        assertUnmerged(coalesce(s[0], badIp), s[0], badIp);

        byte[] badFlags = s[1].clone();
        badFlags[6] ^= (byte) 0x80; // the reserved flag, not compared between packets: only the checksum catches it
        assertUnmerged(coalesce(s[0], badFlags), s[0], badFlags);

        byte[] badLength = s[1].clone();
        badLength[badLength.length - 1] = 0;
        byte[] shortened = Arrays.copyOf(badLength, badLength.length - 2); // total length field no longer matches
        assertUnmerged(coalesce(s[0], shortened), s[0], shortened);

        byte[] badTcp = s[1].clone();
        badTcp[badTcp.length - 1] ^= 0x55;
        assertUnmerged(coalesce(s[0], badTcp), s[0], badTcp);

        byte[] badFirst = s[0].clone();
        badFirst[HDR] ^= 0x55;
        assertUnmerged(coalesce(badFirst, s[1]), badFirst, s[1]);

        byte[] badFirstIp = s[0].clone();
        badFirstIp[4] ^= 1;
        assertUnmerged(coalesce(badFirstIp, s[1]), badFirstIp, s[1]);
    }

    @Test
    void headerFieldsMustMatch() {
        TcpPackets.Spec base = new TcpPackets.Spec();
        byte[] first = stream(base, 0, 1000, 1000)[0];
        String[] what = {"options", "ack", "tos", "ttl", "df", "header length", "flags", "port"};
        for (int k = 0; k < what.length; k++) {
            TcpPackets.Spec next = base.copy();
            next.seq = base.seq + 1000;
            next.id = base.id + 1;
            next.payload = 1000;
            switch (k) {
                case 0 -> next.options = Packets.hex("0101080a 0012d688 0a0b0c0d");
                case 1 -> next.ack++;
                case 2 -> next.tos = 2;
                case 3 -> next.ttl = 63;
                case 4 -> next.df = false;
                case 5 -> next.options = new byte[0];
                case 6 -> next.flags = ACK | TcpPackets.URG;
                default -> next.dport++;
            }
            byte[] second = next.build();
            assertUnmerged(coalesce(first, second), first, second);
        }
        TcpPackets.Spec same = base.copy();
        same.seq = base.seq + 1000;
        same.payload = 1000;
        same.id = 0x7777; // IP IDs are not compared
        assertEquals(1, coalesce(first, same.build()).size(), "control: the same fields merge");
    }

    @Test
    void interleavedFlowsAreCoalescedSeparately() {
        TcpPackets.Spec a = new TcpPackets.Spec();
        TcpPackets.Spec b = new TcpPackets.Spec();
        b.sport = 40001;
        b.seq = 0x7ffffe00; // its sequence numbers wrap past 2^31
        byte[][] sa = stream(a, PSH, 1200, 1200, 1200);
        byte[][] sb = stream(b, 0, 800, 800);
        byte[] udp = Packets.ipv4(a.src, a.dst, Ipv4Header.PROTOCOL_UDP, 64, 100);
        List<Frame> frames = coalesce(sa[0], sb[0], udp, sa[1], sb[1], sa[2]);
        assertEquals(3, frames.size());
        assertMerged(frames.get(0), a, 1200, 3600, ACK | PSH);
        assertMerged(frames.get(1), b, 800, 1600, ACK);
        assertTrue(frames.get(2).plain());
        assertArrayEquals(udp, frames.get(2).packet);
    }

    @Test
    void runsAppendedInPlaceAndPacketsGatheredFromApartMakeOneFrame() {
        // a0 and b0 start items; a1 joins a (apart from a0, copied whole), a2 and a3 are appended behind a1 in the
        // arena, b1 joins b (apart), b2 is appended behind b1; c0..c2 are one run, all in place behind c0.
        TcpPackets.Spec a = new TcpPackets.Spec();
        TcpPackets.Spec b = new TcpPackets.Spec();
        b.sport = 40001;
        TcpPackets.Spec c = new TcpPackets.Spec();
        c.sport = 40002;
        byte[][] sa = stream(a, 0, 1200, 1200, 1200, 1200);
        byte[][] sb = stream(b, PSH, 900, 900, 700);
        byte[][] sc = stream(c, 0, 1000, 1000, 1000);
        byte[][] order = {sa[0], sb[0], sa[1], sa[2], sa[3], sb[1], sb[2], sc[0], sc[1], sc[2]};
        for (byte[] p : order) {
            ByteBuffer buf = ByteBuffer.allocateDirect(p.length + 1).put(1, p);
            assertTrue(coalescer.offer(buf, 1, p.length));
            buf.put(1, new byte[p.length]); // the coalescer must have kept its own copy of what it needs
        }
        assertEquals(order.length, coalescer.pendingPackets());
        List<Frame> frames = new ArrayList<>();
        List<int[]> counts = new ArrayList<>();
        coalescer.flush((buf, offset, length, packets, packetBytes) -> {
            byte[] f = new byte[length];
            buf.get(offset, f);
            frames.add(new Frame(Arrays.copyOf(f, 10), Arrays.copyOfRange(f, 10, length)));
            counts.add(new int[] {packets, packetBytes});
        });
        assertEquals(3, frames.size());
        assertMerged(frames.get(0), a, 1200, 4800, ACK);
        assertMerged(frames.get(1), b, 900, 2500, ACK | PSH);
        assertMerged(frames.get(2), c, 1000, 3000, ACK);
        assertArrayEquals(new int[] {4, 4 * HDR + 4800}, counts.get(0));
        assertArrayEquals(new int[] {3, 3 * HDR + 2500}, counts.get(1));
        assertArrayEquals(new int[] {3, 3 * HDR + 3000}, counts.get(2));
        // And the same stream again after the flush: nothing of the last batch is left over.
        assertEquals(1, coalesce(stream(a, PSH, 1000, 1000, 500)).size());
    }

    @Test
    void aCorruptSegmentInARunIsNotAppended() {
        byte[][] s = stream(new TcpPackets.Spec(), 0, 1000, 1000, 1000, 1000);
        byte[] bad = s[2].clone();
        bad[bad.length - 7] ^= 0x10;
        List<Frame> frames = coalesce(s[0], s[1], bad, s[3]);
        // s0+s1 merge in place; the corrupt s2 starts an item of its own (never verified), so s3 cannot join it.
        assertEquals(3, frames.size());
        assertEquals(VirtioNetHeader.GSO_TCPV4, frames.get(0).gsoType());
        assertEquals(HDR + 2000, frames.get(0).packet.length, "s0 + s1");
        assertArrayEquals(bad, frames.get(1).packet);
        assertArrayEquals(s[3], frames.get(2).packet);
    }

    @Test
    void aPacketThatCannotMergeBlocksLaterMergesOfItsFlow() {
        TcpPackets.Spec base = new TcpPackets.Spec();
        byte[][] s = stream(base, 0, 1000, 1000, 1000);
        TcpPackets.Spec ackOnly = base.copy();
        ackOnly.payload = 0;
        ackOnly.seq = base.seq + 1000;
        byte[] pureAck = ackOnly.build();
        // s[1] must not jump over the pure ACK (same seq): it starts a new item.
        assertUnmerged(coalesce(s[0], pureAck, s[1]), s[0], pureAck, s[1]);
        TcpPackets.Spec fin = base.copy();
        fin.seq = base.seq + 1000;
        fin.payload = 1000;
        fin.flags = ACK | FIN;
        byte[] finPacket = fin.build();
        assertUnmerged(coalesce(s[0], finPacket), s[0], finPacket);
    }

    @Test
    void nonTcpAndOddPacketsPassThrough() {
        byte[] udp = Packets.ipv4(Packets.addr(10, 0, 0, 1), Packets.addr(10, 0, 0, 2), 17, 64, 300);
        byte[] icmp = Packets.ipv4(Packets.addr(10, 0, 0, 1), Packets.addr(10, 0, 0, 2), 1, 64, 84);
        byte[] ipv6 = new byte[60];
        ipv6[0] = 0x60;
        byte[] runt = {0x45, 0, 0};
        TcpPackets.Spec withIpOptions = new TcpPackets.Spec();
        byte[] tcp = withIpOptions.build();
        byte[] ihl6 = new byte[tcp.length + 4];
        System.arraycopy(tcp, 0, ihl6, 0, 20);
        System.arraycopy(tcp, 20, ihl6, 24, tcp.length - 20);
        ihl6[0] = 0x46;
        TcpPackets.putShort(ihl6, 2, ihl6.length);
        assertUnmerged(coalesce(udp, icmp, ipv6, runt, ihl6, udp), udp, icmp, ipv6, runt, ihl6, udp);
    }

    private static void assertUnmerged(List<Frame> frames, byte[]... packets) {
        assertEquals(packets.length, frames.size(), "nothing merged");
        for (int i = 0; i < packets.length; i++) {
            assertTrue(frames.get(i).plain(), "zero virtio header " + i);
            assertArrayEquals(packets[i], frames.get(i).packet, "packet " + i + " as offered, in order");
        }
    }

    @Test
    void capacityIsReportedNotExceeded() {
        TcpCoalescer small = new TcpCoalescer(1, 2, 65545);
        ByteBuffer p = ByteBuffer.wrap(new TcpPackets.Spec().build());
        assertTrue(small.offer(p, 0, p.capacity()));
        assertTrue(small.offer(p, 0, p.capacity()));
        assertFalse(small.offer(p, 0, p.capacity()), "packet table full");
        assertEquals(2, small.flush((b, o, l, c, t) -> { }));
        ByteBuffer big = ByteBuffer.allocate(65535);
        assertTrue(small.offer(big, 0, 65535));
        assertFalse(small.offer(p, 0, p.capacity()), "arena full");
        assertEquals(1, small.flush((b, o, l, c, t) -> { }));
        assertThrows(IllegalArgumentException.class, () -> small.offer(big, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new TcpCoalescer(1, 1, 1000));

        // Flows beyond maxFlows pass through unmerged; the tracked one still merges.
        TcpPackets.Spec a = new TcpPackets.Spec();
        TcpPackets.Spec b = a.copy();
        b.sport++;
        byte[][] sa = stream(a, 0, 1000, 1000);
        byte[][] sb = stream(b, 0, 1000, 1000);
        TcpCoalescer oneFlow = new TcpCoalescer(1, 8, 65545 * 2);
        for (byte[] x : new byte[][] {sa[0], sb[0], sa[1], sb[1]}) {
            assertTrue(oneFlow.offer(ByteBuffer.wrap(x), 0, x.length));
        }
        int[] lengths = new int[4];
        int[] n = {0};
        assertEquals(3, oneFlow.flush((buf, o, l, c, t) -> lengths[n[0]++] = l));
        assertArrayEquals(new int[] {10 + HDR + 2000, 10 + HDR + 1000, 10 + HDR + 1000, 0}, lengths);
    }

    @Test
    void allocatesNothingPerPacket() {
        TcpPackets.Spec a = new TcpPackets.Spec();
        TcpPackets.Spec b = a.copy();
        b.sport++;
        int[] sizes = new int[40];
        Arrays.fill(sizes, 1400);
        byte[][] sa = stream(a, 0, sizes);
        byte[][] sb = stream(b, 0, sizes);
        ByteBuffer batch = ByteBuffer.allocateDirect(200_000);
        int at = 0;
        for (int i = 0; i < sizes.length; i++) {
            batch.put(at, sa[i]);
            batch.put(at + sa[i].length, sb[i]);
            at += sa[i].length + sb[i].length;
        }
        long[] bytes = {0};
        TcpCoalescer.Sink sink = (buf, offset, length, frameCount, frameBytes) -> bytes[0] += length;
        for (int round = 0; round < 3000; round++) {
            offerAll(batch, sa.length * 2, sa[0].length);
            coalescer.flush(sink);
        }
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long before = mx.getCurrentThreadAllocatedBytes();
        bytes[0] = 0;
        for (int round = 0; round < 1000; round++) {
            offerAll(batch, sa.length * 2, sa[0].length);
            assertEquals(2, coalescer.flush(sink));
        }
        long allocated = mx.getCurrentThreadAllocatedBytes() - before;
        assertEquals(1000L * 2 * (10 + HDR + 40 * 1400), bytes[0]);
        assertTrue(allocated < 10_000, allocated + " bytes allocated for 80,000 packets");
    }

    private void offerAll(ByteBuffer batch, int count, int length) {
        for (int i = 0; i < count; i++) {
            if (!coalescer.offer(batch, i * length, length)) {
                throw new AssertionError("no room");
            }
        }
    }

    /**
     * Coalescing then segmenting gives back the original packets byte for byte (random segment sizes and counts, two
     * interleaved flows, some with PSH at the end); the sink moves the buffer's position and limit as a TUN write
     * would.
     */
    @Test
    void segmentingTheCoalescedFramesGivesBackTheOriginals() {
        java.util.Random random = new java.util.Random(4242);
        TcpSegmenter segmenter = new TcpSegmenter(1500);
        ByteBuffer segments = ByteBuffer.allocateDirect(70_000);
        for (int round = 0; round < 200; round++) {
            List<byte[]> offered = new ArrayList<>();
            List<byte[]> reassembled = new ArrayList<>();
            TcpPackets.Spec a = new TcpPackets.Spec();
            a.seq = random.nextInt();
            TcpPackets.Spec b = a.copy();
            b.sport = 1 + random.nextInt(65535);
            b.seq = random.nextInt();
            int gsoA = 1 + random.nextInt(1500 - HDR);
            int gsoB = 1 + random.nextInt(1500 - HDR);
            byte[][] sa = stream(a, random.nextBoolean() ? PSH : 0, sizes(random, gsoA));
            byte[][] sb = stream(b, random.nextBoolean() ? PSH : 0, sizes(random, gsoB));
            for (int i = 0; i < Math.max(sa.length, sb.length); i++) {
                for (byte[][] flow : new byte[][][] {sa, sb}) {
                    if (i < flow.length) {
                        offered.add(flow[i]);
                        assertTrue(coalescer.offer(ByteBuffer.wrap(flow[i]), 0, flow[i].length));
                    }
                }
            }
            coalescer.flush((buf, offset, length, frameCount, frameBytes) -> {
                buf.position(offset).limit(offset + length);
                TcpSegmenter.Result r = segmenter.segment(buf, offset, length, segments, 0);
                ByteBuffer from = r == TcpSegmenter.Result.SEGMENTED ? segments : buf;
                int at = segmenter.packetOffset();
                for (int i = 0; i < segmenter.segmentCount(); i++) {
                    int len = i == segmenter.segmentCount() - 1 ? segmenter.lastSegmentLength()
                            : segmenter.segmentLength();
                    byte[] p = new byte[len];
                    from.get(at, p);
                    reassembled.add(p);
                    at += len;
                }
            });
            // Per flow, the order is kept; across flows the merged frames come out by first packet.
            for (TcpPackets.Spec flow : new TcpPackets.Spec[] {a, b}) {
                List<String> expected = new ArrayList<>();
                List<String> got = new ArrayList<>();
                for (byte[] p : offered) {
                    if (TcpPackets.getShort(p, 20) == flow.sport) {
                        expected.add(Packets.hex(p));
                    }
                }
                for (byte[] p : reassembled) {
                    if (TcpPackets.getShort(p, 20) == flow.sport) {
                        got.add(Packets.hex(p));
                    }
                }
                assertEquals(expected, got, "round " + round);
            }
        }
    }

    /** A UDP datagram 100.96.2.3:5000 → 100.96.1.0:{@code dport}, valid checksum, payload bytes {@code seed + i}. */
    static byte[] udpDatagram(int dport, int payload, int seed) {
        byte[] data = new byte[payload];
        for (int i = 0; i < payload; i++) {
            data[i] = (byte) (seed + i);
        }
        byte[] p = Packets.udp(Packets.addr(100, 96, 2, 3), 5000, Packets.addr(100, 96, 1, 0), dport, data);
        TcpPackets.putShort(p, 26, TcpPackets.tcpChecksum(p, 0));
        return p;
    }

    private final TcpCoalescer udpCoalescer = new TcpCoalescer(64, 128, 512 * 1024, true);

    private List<Frame> coalesceUdp(byte[]... packets) {
        for (byte[] p : packets) {
            ByteBuffer b = ByteBuffer.allocateDirect(p.length + 3).order(ByteOrder.LITTLE_ENDIAN).put(3, p);
            assertTrue(udpCoalescer.offer(b, 3, p.length));
        }
        List<Frame> frames = new ArrayList<>();
        udpCoalescer.flush((buf, offset, length, frameCount, frameBytes) -> {
            byte[] f = new byte[length];
            buf.get(offset, f);
            frames.add(new Frame(Arrays.copyOf(f, 10), Arrays.copyOfRange(f, 10, length)));
        });
        return frames;
    }

    @Test
    void aRunOfOneFlowsDatagramsBecomesOneUsoFrameWithTheSameBytes() {
        byte[][] run = new byte[6][];
        for (int i = 0; i < 5; i++) {
            run[i] = udpDatagram(7000, 1000, i * 1000);
        }
        run[5] = udpDatagram(7000, 300, 5000); // the last may be shorter
        List<Frame> frames = coalesceUdp(run);
        assertEquals(1, frames.size());
        Frame f = frames.get(0);
        assertArrayEquals(TcpPackets.vnet(VirtioNetHeader.FLAG_NEEDS_CSUM, VirtioNetHeader.GSO_UDP_L4, 28, 1000, 20, 6),
                f.vnet());
        byte[] p = f.packet();
        assertEquals(28 + 5300, p.length);
        assertEquals(p.length, TcpPackets.getShort(p, 2), "IP total length");
        assertTrue(Packets.headerChecksumOk(p, 0));
        assertEquals(8 + 5300, TcpPackets.getShort(p, 24), "UDP length of the whole run");
        assertEquals(TcpPackets.pseudoHeaderPartial(p, 0), TcpPackets.getShort(p, 26), "partial checksum");
        for (int i = 0; i < 6; i++) {
            int len = i < 5 ? 1000 : 300;
            assertArrayEquals(Arrays.copyOfRange(run[i], 28, 28 + len),
                    Arrays.copyOfRange(p, 28 + i * 1000, 28 + i * 1000 + len), "payload of datagram " + i);
        }
    }

    @Test
    void datagramsThatMustStayApartDo() {
        byte[] noChecksum = udpDatagram(7000, 100, 1);
        TcpPackets.putShort(noChecksum, 26, 0);
        byte[] corrupt = udpDatagram(7000, 100, 2);
        corrupt[40] ^= 1;
        byte[] longer = udpDatagram(7000, 200, 3);
        // No checksum (it would gain one), a corrupt one (never laundered into a valid frame), one longer than the
        // first, another flow.
        List<Frame> frames = coalesceUdp(udpDatagram(7000, 100, 0), noChecksum, udpDatagram(7000, 100, 4), corrupt,
                udpDatagram(7000, 100, 5), longer, udpDatagram(7001, 100, 6));
        assertEquals(7, frames.size(), "nothing merged");
        assertTrue(frames.stream().allMatch(Frame::plain));
        assertArrayEquals(corrupt, frames.get(3).packet(), "the corrupt datagram as it came");

        // 64 datagrams at most per frame.
        byte[][] many = new byte[70][];
        for (int i = 0; i < many.length; i++) {
            many[i] = udpDatagram(7000, 500, i);
        }
        frames = coalesceUdp(many);
        assertEquals(2, frames.size());
        assertEquals(28 + 64 * 500, frames.get(0).packet().length);
        assertEquals(28 + 6 * 500, frames.get(1).packet().length);
    }

    @Test
    void withoutUdpMergingDatagramsPassAsTheyCame() {
        byte[] a = udpDatagram(7000, 100, 0);
        byte[] b = udpDatagram(7000, 100, 1);
        List<Frame> frames = coalesce(a, b);
        assertEquals(2, frames.size());
        assertArrayEquals(a, frames.get(0).packet());
        assertArrayEquals(b, frames.get(1).packet());
    }

    @Test
    void usoWritesNeedLinux62() {
        assertTrue(TcpCoalescer.kernelAtLeast("6.18.44-fc-v669", 6, 2));
        assertTrue(TcpCoalescer.kernelAtLeast("6.2.0", 6, 2));
        assertTrue(TcpCoalescer.kernelAtLeast("7.0", 6, 2));
        assertFalse(TcpCoalescer.kernelAtLeast("6.1.0-13-amd64", 6, 2));
        assertFalse(TcpCoalescer.kernelAtLeast("5.19.17", 6, 2));
        assertFalse(TcpCoalescer.kernelAtLeast("", 6, 2));
        assertFalse(TcpCoalescer.kernelAtLeast("linux", 6, 2));
    }

    /** 1..60 segments of {@code gso} bytes, the last one 1..gso. */
    private static int[] sizes(java.util.Random random, int gso) {
        int[] sizes = new int[1 + random.nextInt(60)];
        Arrays.fill(sizes, gso);
        sizes[sizes.length - 1] = 1 + random.nextInt(gso);
        return sizes;
    }
}
