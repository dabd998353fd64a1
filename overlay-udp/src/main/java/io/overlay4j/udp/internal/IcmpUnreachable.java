package io.overlay4j.udp.internal;

import java.nio.ByteBuffer;

/**
 * Builds an ICMP Destination Unreachable, code 0 (net unreachable) reply to an IPv4 packet that has no peer, as
 * flannel's proxy writes it back into the TUN (flannel-facts §3.6), byte for byte:
 *
 * <pre>
 * IPv4 header (20 bytes): version 4, IHL 5, TOS 0, total length 28 + quoted, ID 0, no flags, TTL 8, protocol 1,
 *                         source = the node's flannel0 address, destination = the offender's source
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   Type = 3    |   Code = 0    |          Checksum             | 20  ICMP_TYPE_OFFSET, ICMP_CODE_OFFSET,
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        ICMP_CHECKSUM_OFFSET
 * |                             unused = 0                        | 24
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |      offender's IP header (IHL × 4 bytes) + first 8 data bytes | 28  ICMP_DATA_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * </pre>
 *
 * <p>No reply is built (RFC 792 / RFC 1812) for an offender that is ICMP itself, a non-first fragment, a malformed
 * header (version ≠ 4, IHL &lt; 5, header beyond the bytes present), or a source that cannot be answered
 * (0.0.0.0, multicast, class E, broadcast). Unlike flannel, IHL 15 (60-byte header) is answered. If the offender has
 * fewer than 8 data bytes, only those present are quoted (flannel would quote stale buffer bytes).
 */
public final class IcmpUnreachable {
    /** ICMP type field, relative to the start of the reply. */
    public static final int ICMP_TYPE_OFFSET = Ipv4Header.MIN_LENGTH;
    /** ICMP code field. */
    public static final int ICMP_CODE_OFFSET = ICMP_TYPE_OFFSET + 1;
    /** ICMP checksum field. */
    public static final int ICMP_CHECKSUM_OFFSET = ICMP_TYPE_OFFSET + 2;
    /** The 4 unused bytes. */
    public static final int ICMP_UNUSED_OFFSET = ICMP_TYPE_OFFSET + 4;
    /** The quoted offender. */
    public static final int ICMP_DATA_OFFSET = ICMP_TYPE_OFFSET + 8;

    /** ICMP type Destination Unreachable. */
    public static final int TYPE_DESTINATION_UNREACHABLE = 3;
    /** ICMP code net unreachable. */
    public static final int CODE_NET_UNREACHABLE = 0;
    /** The TTL flannel gives its replies. */
    public static final int REPLY_TTL = 8;
    /** Offender data bytes quoted after its header (RFC 792: 64 bits). */
    public static final int QUOTED_DATA = 8;
    /** The longest reply: 20 + 8 + 60 + 8 bytes. */
    public static final int MAX_LENGTH = ICMP_DATA_OFFSET + Ipv4Header.MAX_LENGTH + QUOTED_DATA;

    private IcmpUnreachable() {
    }

    /**
     * Writes the reply to the offender at {@code [offset, offset + length)} of {@code offender} into {@code dst} from
     * {@code dstOffset}, by absolute index (positions and limits are not touched).
     *
     * @param source the reply's source address (the node's own subnet network address), network order
     * @return the reply's length, or 0 if no reply may be sent for this offender
     * @throws IndexOutOfBoundsException if {@code dst} has fewer than {@link #MAX_LENGTH} bytes from {@code dstOffset}
     *                                   and the reply does not fit
     */
    public static int write(ByteBuffer offender, int offset, int length, ByteBuffer dst, int dstOffset, int source) {
        if (!mayReply(offender, offset, length)) {
            return 0;
        }
        int quoted = Math.min(Ipv4Header.headerLength(offender, offset) + QUOTED_DATA, length);
        int total = ICMP_DATA_OFFSET + quoted;

        dst.put(dstOffset + Ipv4Header.VERSION_IHL_OFFSET, (byte) 0x45);
        dst.put(dstOffset + Ipv4Header.TOS_OFFSET, (byte) 0);
        Ipv4Header.putShort(dst, dstOffset + Ipv4Header.TOTAL_LENGTH_OFFSET, total);
        Ipv4Header.putShort(dst, dstOffset + Ipv4Header.IDENTIFICATION_OFFSET, 0);
        Ipv4Header.putShort(dst, dstOffset + Ipv4Header.FRAGMENT_OFFSET, 0);
        dst.put(dstOffset + Ipv4Header.TTL_OFFSET, (byte) REPLY_TTL);
        dst.put(dstOffset + Ipv4Header.PROTOCOL_OFFSET, (byte) Ipv4Header.PROTOCOL_ICMP);
        Ipv4Header.putIntBigEndian(dst, dstOffset + Ipv4Header.SOURCE_OFFSET, source);
        Ipv4Header.putIntBigEndian(dst, dstOffset + Ipv4Header.DESTINATION_OFFSET, Ipv4Header.source(offender, offset));
        Ipv4Header.updateChecksum(dst, dstOffset);

        dst.put(dstOffset + ICMP_TYPE_OFFSET, (byte) TYPE_DESTINATION_UNREACHABLE);
        dst.put(dstOffset + ICMP_CODE_OFFSET, (byte) CODE_NET_UNREACHABLE);
        Ipv4Header.putShort(dst, dstOffset + ICMP_CHECKSUM_OFFSET, 0);
        Ipv4Header.putIntBigEndian(dst, dstOffset + ICMP_UNUSED_OFFSET, 0);
        for (int i = 0; i < quoted; i++) {
            dst.put(dstOffset + ICMP_DATA_OFFSET + i, offender.get(offset + i));
        }
        int icmpLength = total - ICMP_TYPE_OFFSET;
        Ipv4Header.putShort(dst, dstOffset + ICMP_CHECKSUM_OFFSET,
                Checksums.checksum(dst, dstOffset + ICMP_TYPE_OFFSET, icmpLength));
        return total;
    }

    /** Whether a reply may be sent for the offender at {@code [offset, offset + length)}. */
    public static boolean mayReply(ByteBuffer offender, int offset, int length) {
        if (length < Ipv4Header.MIN_LENGTH || Ipv4Header.version(offender, offset) != 4) {
            return false;
        }
        int headerLength = Ipv4Header.headerLength(offender, offset);
        if (headerLength < Ipv4Header.MIN_LENGTH || headerLength > length) {
            return false;
        }
        if (Ipv4Header.protocol(offender, offset) == Ipv4Header.PROTOCOL_ICMP) {
            return false;
        }
        if (Ipv4Header.fragmentOffset(offender, offset) != 0) {
            return false;
        }
        int source = Ipv4Header.source(offender, offset);
        // 0.0.0.0/8 ("this network"), and 224.0.0.0/3 (multicast, class E and 255.255.255.255) cannot be answered.
        return (source >>> 24) != 0 && (source >>> 29) != 0b111;
    }
}
