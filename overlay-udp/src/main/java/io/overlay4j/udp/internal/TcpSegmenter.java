package io.overlay4j.udp.internal;

import io.overlay4j.DropReason;
import java.nio.ByteBuffer;

/**
 * Egress offload: turns what a TUN device opened with {@code IFF_VNET_HDR} and {@code TUN_F_TSO4} returns from one
 * read (a {@link VirtioNetHeader} followed by an IPv4 packet, possibly a TCP super-packet of up to 64 KiB) into
 * complete IPv4 packets that fit the TUN MTU, as the kernel's {@code tcp_gso_segment} would, without allocating.
 *
 * <ul>
 *   <li>{@code GSO_TCPV4} (with or without {@code GSO_ECN}): split into segments of {@code gso_size} payload bytes,
 *   the last one possibly shorter, written back to back into a caller-owned output buffer. Each segment: the IP and
 *   TCP headers copied, IPv4 identification + i, total length and header checksum recomputed, TCP sequence number
 *   first + i × gso_size, FIN and PSH only on the last segment, CWR only on the first, and a full TCP checksum over
 *   pseudo-header, header and payload. All segments but the last have the same length, so the whole run can go out
 *   in one {@code UDP_SEGMENT} (GSO) send with {@link #segmentLength()} as the segment size.</li>
 *   <li>{@code GSO_UDP_L4} on IPv4 (USO, from {@code TUN_F_USO4}: an application sent with {@code UDP_SEGMENT}):
 *   split likewise into datagrams of {@code gso_size} payload bytes, each with the UDP header copied, its length
 *   fixed, IPv4 identification + i, and a full UDP checksum (0 sent as 0xffff), as the kernel's
 *   {@code __udp_gso_segment} does.</li>
 *   <li>{@code GSO_NONE} with {@code NEEDS_CSUM}: the partial L4 checksum (TCP or UDP: any {@code csum_start} /
 *   {@code csum_offset}) is finished in place; the packet stays in the source buffer.</li>
 *   <li>{@code GSO_NONE} without {@code NEEDS_CSUM}: passed through untouched in the source buffer.</li>
 *   <li>Everything else is refused with a drop {@link Result}, never an exception: a header shorter than 10 bytes,
 *   IPv6 super-packets ({@code GSO_TCPV6}, or {@code GSO_UDP_L4} on IPv6) for now, a GSO packet that is not a
 *   sane unfragmented IPv4/TCP (IPv4/UDP) packet, nonsense {@code csum_start}/{@code csum_offset},
 *   {@code gso_size} 0 or a segment that would exceed the MTU, a packet over 64 KiB, an output buffer too small.</li>
 * </ul>
 *
 * <p>The header length hint in the virtio header is ignored: the IP and TCP/UDP header lengths are recomputed. (The
 * name predates USO support; the class splits every GSO type the offload device can hand over for IPv4.)
 *
 * <p>One instance per thread: {@link #segment} stores its outcome (count, lengths, where the output is) in fields
 * read through the accessors until the next call.
 */
public final class TcpSegmenter {
    /** The outcome of {@link #segment}. */
    public enum Result {
        /** A TCP or UDP super-packet was split: {@link #segmentCount()} packets in the output buffer. */
        SEGMENTED(null),
        /** A single packet's partial checksum was finished in place; it is at {@link #packetOffset()} in the source. */
        CHECKSUM_COMPLETED(null),
        /** A single complete packet, untouched, at {@link #packetOffset()} in the source. */
        PASSED_THROUGH(null),
        /** Fewer bytes than a virtio header, or no packet after it. */
        RUNT(DropReason.RUNT),
        /** A GSO packet that is not IPv4: the version nibble, or {@code GSO_TCPV6}. */
        NOT_IPV4(DropReason.NOT_IPV4),
        /** A GSO packet whose IPv4 header is malformed (IHL, or a fragment). */
        BAD_IP_HEADER(DropReason.BAD_HEADER),
        /** The IPv4 total length claims more bytes than were read, or less than the headers. */
        TRUNCATED(DropReason.TRUNCATED),
        /** {@code GSO_TCPV4} on a packet that is not TCP. */
        NOT_TCP(DropReason.BAD_HEADER),
        /** {@code GSO_UDP_L4} on a packet that is not UDP. */
        NOT_UDP(DropReason.BAD_HEADER),
        /** The UDP length field disagrees with the IPv4 total length. */
        BAD_UDP_HEADER(DropReason.BAD_HEADER),
        /** The TCP header is malformed (data offset below 5 or beyond the packet). */
        BAD_TCP_HEADER(DropReason.BAD_HEADER),
        /** {@code csum_start} / {@code csum_offset} point outside the packet or not at the L4 checksum. */
        BAD_CHECKSUM_FIELDS(DropReason.BAD_HEADER),
        /** {@code gso_size} is 0, or a GSO packet carries no payload. */
        BAD_GSO_SIZE(DropReason.BAD_HEADER),
        /** Headers plus {@code gso_size} exceed the MTU, or the packet exceeds 65,535 bytes. */
        OVERSIZE(DropReason.OVERSIZE),
        /** A GSO type the virtio spec does not define for a TUN device. */
        UNSUPPORTED_GSO_TYPE(DropReason.BAD_HEADER),
        /**
         * The output buffer cannot hold all segments (a caller's sizing problem, or a tiny {@code gso_size}: size the
         * output for 65,535 bytes plus one header per segment).
         */
        NO_ROOM(DropReason.OVERSIZE);

        private final DropReason dropReason;

        Result(DropReason dropReason) {
            this.dropReason = dropReason;
        }

        /** Whether the packet must be dropped (nothing usable was produced). */
        public boolean isDrop() {
            return dropReason != null;
        }

        /** The reason to count a drop under in {@link io.overlay4j.TrafficStats}; null if this is no drop. */
        public DropReason dropReason() {
            return dropReason;
        }
    }

    /** The largest IPv4 packet. */
    public static final int MAX_PACKET = 65535;
    /** The UDP header length. */
    private static final int UDP_HEADER = 8;
    /** The UDP length field within the UDP header. */
    private static final int UDP_LENGTH_OFFSET = 4;

    private final int mtu;
    private int segmentCount;
    private int segmentLength;
    private int lastSegmentLength;
    private int packetOffset;

    /**
     * A segmenter for a TUN device of MTU {@code mtu}.
     *
     * @param mtu the largest IP packet a segment may be (the TUN MTU, from which the kernel derives {@code gso_size})
     */
    public TcpSegmenter(int mtu) {
        if (mtu < Ipv4Header.MIN_LENGTH + TcpHeader.MIN_LENGTH + 1 || mtu > MAX_PACKET) {
            throw new IllegalArgumentException("MTU must be 41..65535: " + mtu);
        }
        this.mtu = mtu;
    }

    /** The MTU segments must fit. */
    public int mtu() {
        return mtu;
    }

    /**
     * Processes one read from a vnet-header TUN device. The caller keeps ownership of both buffers; only absolute
     * indexes are used, so positions are ignored and left alone, but limits bound the indexes: the input must lie
     * below {@code src.limit()} and the output must fit below {@code dst.limit()}.
     *
     * @param src       holds the virtio header and the packet; modified only for {@link Result#CHECKSUM_COMPLETED}
     * @param srcOffset where the virtio header starts
     * @param srcLength virtio header plus packet bytes, as returned by the read
     * @param dst       where segments go for {@link Result#SEGMENTED}, from {@code dstOffset}; must not overlap the
     *                  source region; untouched for other results
     * @param dstOffset where the first segment starts
     * @return what happened; on success read {@link #segmentCount()}, {@link #segmentLength()},
     *         {@link #lastSegmentLength()} and {@link #packetOffset()}
     */
    public Result segment(ByteBuffer src, int srcOffset, int srcLength, ByteBuffer dst, int dstOffset) {
        return segment(src, srcOffset, srcLength, dst, dstOffset, 0);
    }

    /**
     * As {@link #segment(ByteBuffer, int, int, ByteBuffer, int)}, but leaves {@code gap} bytes free in front of every
     * segment of a {@link Result#SEGMENTED} output (for an encapsulation header each): segment i starts at
     * {@code dstOffset + gap + i * (gap + segmentLength())}, {@link #packetOffset()} is the first one's start.
     *
     * @param gap bytes left untouched before each segment, 0..255
     */
    public Result segment(ByteBuffer src, int srcOffset, int srcLength, ByteBuffer dst, int dstOffset, int gap) {
        if (gap < 0 || gap > 255) {
            throw new IllegalArgumentException("gap must be 0..255: " + gap);
        }
        segmentCount = 0;
        segmentLength = 0;
        lastSegmentLength = 0;
        packetOffset = 0;
        if (srcLength <= VirtioNetHeader.LENGTH) {
            return Result.RUNT;
        }
        int pkt = srcOffset + VirtioNetHeader.LENGTH;
        int pktLength = srcLength - VirtioNetHeader.LENGTH;
        if (pktLength > MAX_PACKET) {
            return Result.OVERSIZE;
        }
        int flags = VirtioNetHeader.flags(src, srcOffset);
        int gsoType = VirtioNetHeader.gsoType(src, srcOffset) & ~VirtioNetHeader.GSO_ECN;
        if (gsoType == VirtioNetHeader.GSO_NONE) {
            return single(src, srcOffset, pkt, pktLength, flags);
        }
        if (gsoType == VirtioNetHeader.GSO_TCPV4) {
            return split(src, srcOffset, pkt, pktLength, flags, dst, dstOffset, gap, true);
        }
        if (gsoType == VirtioNetHeader.GSO_UDP_L4) {
            return split(src, srcOffset, pkt, pktLength, flags, dst, dstOffset, gap, false);
        }
        return gsoType == VirtioNetHeader.GSO_TCPV6 ? Result.NOT_IPV4 : Result.UNSUPPORTED_GSO_TYPE;
    }

    private Result single(ByteBuffer src, int vnet, int pkt, int pktLength, int flags) {
        if ((flags & VirtioNetHeader.FLAG_NEEDS_CSUM) == 0) {
            setSingle(pkt, pktLength);
            return Result.PASSED_THROUGH;
        }
        int start = VirtioNetHeader.csumStart(src, vnet);
        int field = start + VirtioNetHeader.csumOffset(src, vnet);
        if (start < Ipv4Header.MIN_LENGTH || field + 2 > pktLength || (field - start & 1) != 0) {
            return Result.BAD_CHECKSUM_FIELDS;
        }
        // The field holds the pseudo-header sum; summing it with the rest gives the full sum (skb_checksum_help).
        long sum = Checksums.sum(src, pkt + start, pktLength - start);
        Ipv4Header.putShort(src, pkt + field, Checksums.finishUdp(sum));
        setSingle(pkt, pktLength);
        return Result.CHECKSUM_COMPLETED;
    }

    private void setSingle(int pkt, int pktLength) {
        segmentCount = 1;
        segmentLength = pktLength;
        lastSegmentLength = pktLength;
        packetOffset = pkt;
    }

    private Result split(ByteBuffer src, int vnet, int pkt, int pktLength, int flags, ByteBuffer dst,
                         int dstOffset, int gap, boolean tcp) {
        if (pktLength < Ipv4Header.MIN_LENGTH || Ipv4Header.version(src, pkt) != 4) {
            return Result.NOT_IPV4;
        }
        int ihl = Ipv4Header.headerLength(src, pkt);
        if (ihl < Ipv4Header.MIN_LENGTH || ihl > pktLength
                || (Ipv4Header.getUnsignedShort(src, pkt + Ipv4Header.FRAGMENT_OFFSET) & 0x3fff) != 0) {
            return Result.BAD_IP_HEADER; // a GSO packet is never a fragment (MF or offset set)
        }
        int total = Ipv4Header.totalLength(src, pkt);
        if (total > pktLength || total < ihl + (tcp ? TcpHeader.MIN_LENGTH : UDP_HEADER)) {
            return Result.TRUNCATED;
        }
        if (Ipv4Header.protocol(src, pkt) != (tcp ? TcpHeader.PROTOCOL_TCP : Ipv4Header.PROTOCOL_UDP)) {
            return tcp ? Result.NOT_TCP : Result.NOT_UDP;
        }
        int l4 = pkt + ihl;
        int thl = tcp ? TcpHeader.headerLength(src, l4) : UDP_HEADER;
        if (thl < (tcp ? TcpHeader.MIN_LENGTH : UDP_HEADER) || ihl + thl > total) {
            return Result.BAD_TCP_HEADER;
        }
        if (!tcp && Ipv4Header.getUnsignedShort(src, l4 + UDP_LENGTH_OFFSET) != total - ihl) {
            return Result.BAD_UDP_HEADER;
        }
        if ((flags & VirtioNetHeader.FLAG_NEEDS_CSUM) != 0 && (VirtioNetHeader.csumStart(src, vnet) != ihl
                || VirtioNetHeader.csumOffset(src, vnet)
                != (tcp ? VirtioNetHeader.TCP_CSUM_OFFSET : VirtioNetHeader.UDP_CSUM_OFFSET))) {
            return Result.BAD_CHECKSUM_FIELDS;
        }
        int mss = VirtioNetHeader.gsoSize(src, vnet);
        int hdrLen = ihl + thl;
        int payload = total - hdrLen;
        if (mss == 0 || payload == 0) {
            return Result.BAD_GSO_SIZE;
        }
        if (hdrLen + mss > mtu) {
            return Result.OVERSIZE;
        }
        int count = (payload + mss - 1) / mss;
        int lastPayload = payload - (count - 1) * mss;
        if ((long) dstOffset + (long) count * (hdrLen + gap) + payload > dst.limit() || dstOffset < 0) {
            return Result.NO_ROOM;
        }

        int seq = tcp ? TcpHeader.sequence(src, l4) : 0;
        int id = Ipv4Header.getUnsignedShort(src, pkt + Ipv4Header.IDENTIFICATION_OFFSET);
        int tcpFlags = tcp ? TcpHeader.flags(src, l4) : 0;
        long addressSum = Checksums.pseudoHeaderSum(Ipv4Header.source(src, pkt), Ipv4Header.destination(src, pkt),
                Ipv4Header.protocol(src, pkt), 0);
        // The IP header's sum without the three fields that differ per segment (total length, identification,
        // checksum): adding a field's complement takes it out. Each segment's header checksum is then one fold; any
        // positive sum folds to the one representative in 1..0xffff, so this equals the sum over the whole header.
        long ipBase = Checksums.sum(src, pkt, ihl)
                + (~Ipv4Header.getUnsignedShort(src, pkt + Ipv4Header.TOTAL_LENGTH_OFFSET) & 0xffff)
                + (~id & 0xffff)
                + (~Ipv4Header.getUnsignedShort(src, pkt + Ipv4Header.CHECKSUM_OFFSET) & 0xffff);
        int out = dstOffset;
        int in = pkt + hdrLen;
        for (int i = 0; i < count; i++) {
            boolean last = i == count - 1;
            int segPayload = last ? lastPayload : mss;
            out += gap;
            dst.put(out, src, pkt, hdrLen);
            dst.put(out + hdrLen, src, in, segPayload);
            Ipv4Header.putShort(dst, out + Ipv4Header.TOTAL_LENGTH_OFFSET, hdrLen + segPayload);
            Ipv4Header.putShort(dst, out + Ipv4Header.IDENTIFICATION_OFFSET, id + i);
            Ipv4Header.putShort(dst, out + Ipv4Header.CHECKSUM_OFFSET,
                    Checksums.finish(ipBase + hdrLen + segPayload + (id + i & 0xffff)));
            int outL4 = out + ihl;
            int l4Length = thl + segPayload;
            if (tcp) {
                TcpHeader.sequence(dst, outL4, seq + i * mss);
                int f = tcpFlags;
                if (!last) {
                    f &= ~(TcpHeader.FLAG_FIN | TcpHeader.FLAG_PSH);
                }
                if (i != 0) {
                    f &= ~TcpHeader.FLAG_CWR;
                }
                TcpHeader.flags(dst, outL4, f);
                TcpHeader.checksum(dst, outL4, 0);
                long sum = addressSum + l4Length + Checksums.sum(dst, outL4, l4Length);
                TcpHeader.checksum(dst, outL4, Checksums.finish(sum));
            } else {
                Ipv4Header.putShort(dst, outL4 + UDP_LENGTH_OFFSET, l4Length);
                Ipv4Header.putShort(dst, outL4 + VirtioNetHeader.UDP_CSUM_OFFSET, 0);
                long sum = addressSum + l4Length + Checksums.sum(dst, outL4, l4Length);
                Ipv4Header.putShort(dst, outL4 + VirtioNetHeader.UDP_CSUM_OFFSET, Checksums.finishUdp(sum));
            }
            out += hdrLen + segPayload;
            in += segPayload;
        }
        segmentCount = count;
        segmentLength = hdrLen + mss;
        lastSegmentLength = hdrLen + lastPayload;
        packetOffset = dstOffset + gap;
        return Result.SEGMENTED;
    }

    /** After success: how many packets were produced (1 unless {@link Result#SEGMENTED}). */
    public int segmentCount() {
        return segmentCount;
    }

    /** After success: the length of every packet but the last (the {@code UDP_SEGMENT} size); of the one packet. */
    public int segmentLength() {
        return segmentLength;
    }

    /** After success: the length of the last packet (at most {@link #segmentLength()}). */
    public int lastSegmentLength() {
        return lastSegmentLength;
    }

    /** After success: the total bytes of all packets, back to back. */
    public int outputLength() {
        return segmentCount == 0 ? 0 : (segmentCount - 1) * segmentLength + lastSegmentLength;
    }

    /**
     * After success: where the first packet starts: {@code dstOffset} in the output buffer for
     * {@link Result#SEGMENTED}, just after the virtio header in the source buffer otherwise.
     */
    public int packetOffset() {
        return packetOffset;
    }
}
