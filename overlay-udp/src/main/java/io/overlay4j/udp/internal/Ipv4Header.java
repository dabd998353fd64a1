package io.overlay4j.udp.internal;

import io.overlay4j.DropReason;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Flyweight access to an IPv4 header (RFC 791) at an absolute offset of a {@link ByteBuffer}: static methods using
 * absolute gets and puts only, so neither the buffer's position, limit nor byte order matter, and nothing is
 * allocated.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version|  IHL  |Type of Service|          Total Length         |  0  VERSION_IHL_OFFSET, TOS_OFFSET,
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        TOTAL_LENGTH_OFFSET
 * |         Identification        |Flags|      Fragment Offset    |  4  IDENTIFICATION_OFFSET, FRAGMENT_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Time to Live |    Protocol   |         Header Checksum       |  8  TTL_OFFSET, PROTOCOL_OFFSET,
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        CHECKSUM_OFFSET
 * |                       Source Address                          | 12  SOURCE_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Destination Address                        | 16  DESTINATION_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Options (IHL &gt; 5)                          | 20
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * </pre>
 *
 * <p>Multi-byte fields are in network byte order; addresses are returned as {@code int}s in network order (the first
 * octet in the most significant byte), as {@link io.overlay4j.Ipv4Prefix} uses them.
 */
public final class Ipv4Header {
    /** Version (high nibble) and IHL (low nibble, in 32-bit words). */
    public static final int VERSION_IHL_OFFSET = 0;
    /** Type of service / DSCP+ECN. */
    public static final int TOS_OFFSET = 1;
    /** Total length of the packet, header included, 16 bits. */
    public static final int TOTAL_LENGTH_OFFSET = 2;
    /** Identification, 16 bits. */
    public static final int IDENTIFICATION_OFFSET = 4;
    /** Flags (3 bits) and fragment offset (13 bits, in 8-byte units). */
    public static final int FRAGMENT_OFFSET = 6;
    /** Time to live. */
    public static final int TTL_OFFSET = 8;
    /** Protocol number. */
    public static final int PROTOCOL_OFFSET = 9;
    /** Header checksum, 16 bits. */
    public static final int CHECKSUM_OFFSET = 10;
    /** Source address. */
    public static final int SOURCE_OFFSET = 12;
    /** Destination address. */
    public static final int DESTINATION_OFFSET = 16;

    /** The length of a header without options. */
    public static final int MIN_LENGTH = 20;
    /** The length of a header with the most options (IHL 15). */
    public static final int MAX_LENGTH = 60;
    /** Protocol number of ICMP. */
    public static final int PROTOCOL_ICMP = 1;
    /** Protocol number of UDP. */
    public static final int PROTOCOL_UDP = 17;
    /** The bits of the fragment offset within the 16-bit flags/fragment field. */
    public static final int FRAGMENT_OFFSET_MASK = 0x1fff;
    /** The "don't fragment" flag within the 16-bit flags/fragment field. */
    public static final int FLAG_DONT_FRAGMENT = 0x4000;

    private Ipv4Header() {
    }

    /**
     * Validates the IPv4 packet in {@code [position, limit)} without changing its bytes, in this order: fewer than 20
     * bytes is {@link DropReason#RUNT}; a version other than 4 {@link DropReason#NOT_IPV4}; an IHL below 5, a header
     * longer than the bytes present or a total length shorter than the header {@link DropReason#BAD_HEADER}; a total
     * length beyond the bytes present {@link DropReason#TRUNCATED}; more bytes than {@code mtu}
     * {@link DropReason#OVERSIZE}. Trailing bytes beyond the total length (link padding) are then trimmed by lowering
     * the limit.
     *
     * @return {@code null} if the packet is well formed, else the reason to drop it
     */
    public static DropReason validate(ByteBuffer buf, int mtu) {
        int offset = buf.position();
        int length = buf.limit() - offset;
        if (length < MIN_LENGTH) {
            return DropReason.RUNT;
        }
        if (version(buf, offset) != 4) {
            return DropReason.NOT_IPV4;
        }
        int headerLength = headerLength(buf, offset);
        if (headerLength < MIN_LENGTH || headerLength > length) {
            return DropReason.BAD_HEADER;
        }
        int totalLength = totalLength(buf, offset);
        if (totalLength < headerLength) {
            return DropReason.BAD_HEADER;
        }
        if (totalLength > length) {
            return DropReason.TRUNCATED;
        }
        if (length > mtu) {
            // The bytes received, not the total length: a datagram beyond the MTU is never trimmed into acceptance.
            return DropReason.OVERSIZE;
        }
        if (totalLength < length) {
            buf.limit(offset + totalLength);
        }
        return null;
    }

    /** The IP version: the high nibble of the first byte. */
    public static int version(ByteBuffer buf, int offset) {
        return (buf.get(offset + VERSION_IHL_OFFSET) >> 4) & 0xf;
    }

    /** The header length in bytes: IHL × 4. */
    public static int headerLength(ByteBuffer buf, int offset) {
        return (buf.get(offset + VERSION_IHL_OFFSET) & 0xf) << 2;
    }

    /** The total length field. */
    public static int totalLength(ByteBuffer buf, int offset) {
        return getUnsignedShort(buf, offset + TOTAL_LENGTH_OFFSET);
    }

    /** The fragment offset in 8-byte units (0 for an unfragmented packet or a first fragment). */
    public static int fragmentOffset(ByteBuffer buf, int offset) {
        return getUnsignedShort(buf, offset + FRAGMENT_OFFSET) & FRAGMENT_OFFSET_MASK;
    }

    /** The time to live. */
    public static int ttl(ByteBuffer buf, int offset) {
        return buf.get(offset + TTL_OFFSET) & 0xff;
    }

    /** The protocol number. */
    public static int protocol(ByteBuffer buf, int offset) {
        return buf.get(offset + PROTOCOL_OFFSET) & 0xff;
    }

    /** The header checksum field. */
    public static int checksum(ByteBuffer buf, int offset) {
        return getUnsignedShort(buf, offset + CHECKSUM_OFFSET);
    }

    /** The source address, network order. */
    public static int source(ByteBuffer buf, int offset) {
        return getIntBigEndian(buf, offset + SOURCE_OFFSET);
    }

    /** The destination address, network order. */
    public static int destination(ByteBuffer buf, int offset) {
        return getIntBigEndian(buf, offset + DESTINATION_OFFSET);
    }

    /**
     * Decrements the TTL by one and fixes the header checksum incrementally (RFC 1624, eqn. 3), as a router does.
     * The caller checks first that the TTL is above zero.
     */
    public static void decrementTtl(ByteBuffer buf, int offset) {
        adjustTtl(buf, offset, -1);
    }

    /**
     * Increments the TTL by one and fixes the header checksum incrementally: undoes {@link #decrementTtl}. The caller
     * checks first that the TTL is below 255.
     */
    public static void incrementTtl(ByteBuffer buf, int offset) {
        adjustTtl(buf, offset, 1);
    }

    private static void adjustTtl(ByteBuffer buf, int offset, int delta) {
        int ttlProtocolIndex = offset + TTL_OFFSET;
        int oldWord = getUnsignedShort(buf, ttlProtocolIndex);
        int newWord = (oldWord + (delta << 8)) & 0xffff;
        int checksumIndex = offset + CHECKSUM_OFFSET;
        int oldChecksum = getUnsignedShort(buf, checksumIndex);
        // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), one's complement sums with end-around carry.
        int sum = (~oldChecksum & 0xffff) + (~oldWord & 0xffff) + newWord;
        sum = (sum & 0xffff) + (sum >>> 16);
        sum = (sum & 0xffff) + (sum >>> 16);
        buf.put(ttlProtocolIndex, (byte) (newWord >>> 8));
        putShort(buf, checksumIndex, ~sum & 0xffff);
    }

    /**
     * Computes the header checksum over {@code headerLength(buf, offset)} bytes with the checksum field taken as zero,
     * the value the checksum field must hold.
     */
    public static int computeChecksum(ByteBuffer buf, int offset) {
        int length = headerLength(buf, offset);
        int stored = getUnsignedShort(buf, offset + CHECKSUM_OFFSET);
        // The stored checksum is part of the sum; subtracting it (adding its complement) leaves the sum without it.
        long sum = Checksums.sum(buf, offset, length) + (~stored & 0xffff);
        return ~Checksums.fold(sum) & 0xffff;
    }

    /** Computes and stores the header checksum. */
    public static void updateChecksum(ByteBuffer buf, int offset) {
        putShort(buf, offset + CHECKSUM_OFFSET, 0);
        putShort(buf, offset + CHECKSUM_OFFSET, Checksums.checksum(buf, offset, headerLength(buf, offset)));
    }

    /** Whether the header checksum verifies (the one's complement sum of the header is 0xffff). */
    public static boolean isChecksumValid(ByteBuffer buf, int offset) {
        return Checksums.fold(Checksums.sum(buf, offset, headerLength(buf, offset))) == 0xffff;
    }

    /** A 16-bit big-endian read at an absolute index. */
    public static int getUnsignedShort(ByteBuffer buf, int index) {
        return (buf.get(index) & 0xff) << 8 | buf.get(index + 1) & 0xff;
    }

    /** A 16-bit big-endian write at an absolute index. */
    public static void putShort(ByteBuffer buf, int index, int value) {
        buf.put(index, (byte) (value >>> 8));
        buf.put(index + 1, (byte) value);
    }

    /** A 32-bit big-endian read at an absolute index, whatever the buffer's byte order. */
    public static int getIntBigEndian(ByteBuffer buf, int index) {
        int v = buf.getInt(index);
        return buf.order() == ByteOrder.BIG_ENDIAN ? v : Integer.reverseBytes(v);
    }

    /** A 32-bit big-endian write at an absolute index, whatever the buffer's byte order. */
    public static void putIntBigEndian(ByteBuffer buf, int index, int value) {
        buf.putInt(index, buf.order() == ByteOrder.BIG_ENDIAN ? value : Integer.reverseBytes(value));
    }
}
