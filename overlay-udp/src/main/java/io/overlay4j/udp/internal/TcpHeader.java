package io.overlay4j.udp.internal;

import java.nio.ByteBuffer;

/**
 * Flyweight access to a TCP header (RFC 9293) at an absolute offset of a {@link ByteBuffer}: static methods with
 * absolute gets and puts only; the buffer's position, limit and byte order do not matter and nothing is allocated.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |  0  SOURCE_PORT_OFFSET, DESTINATION_PORT_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                        Sequence Number                        |  4  SEQUENCE_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Acknowledgment Number                      |  8  ACKNOWLEDGMENT_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Data |       |C|E|U|A|P|R|S|F|                               | 12  DATA_OFFSET_OFFSET, FLAGS_OFFSET (13),
 * | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |        WINDOW_OFFSET (14)
 * |       |       |R|E|G|K|H|T|N|N|                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           Checksum            |         Urgent Pointer        | 16  CHECKSUM_OFFSET, URGENT_POINTER_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Options (data offset &gt; 5)                  | 20
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * </pre>
 */
public final class TcpHeader {
    /** Source port, 16 bits. */
    public static final int SOURCE_PORT_OFFSET = 0;
    /** Destination port, 16 bits. */
    public static final int DESTINATION_PORT_OFFSET = 2;
    /** Sequence number, 32 bits. */
    public static final int SEQUENCE_OFFSET = 4;
    /** Acknowledgment number, 32 bits. */
    public static final int ACKNOWLEDGMENT_OFFSET = 8;
    /** Data offset (high nibble, in 32-bit words). */
    public static final int DATA_OFFSET_OFFSET = 12;
    /** The eight flag bits CWR..FIN. */
    public static final int FLAGS_OFFSET = 13;
    /** Window, 16 bits. */
    public static final int WINDOW_OFFSET = 14;
    /** Checksum, 16 bits. */
    public static final int CHECKSUM_OFFSET = 16;
    /** Urgent pointer, 16 bits. */
    public static final int URGENT_POINTER_OFFSET = 18;

    /** The length of a header without options. */
    public static final int MIN_LENGTH = 20;
    /** The length of a header with the most options (data offset 15). */
    public static final int MAX_LENGTH = 60;
    /** The IP protocol number of TCP. */
    public static final int PROTOCOL_TCP = 6;

    /** FIN flag. */
    public static final int FLAG_FIN = 0x01;
    /** SYN flag. */
    public static final int FLAG_SYN = 0x02;
    /** RST flag. */
    public static final int FLAG_RST = 0x04;
    /** PSH flag. */
    public static final int FLAG_PSH = 0x08;
    /** ACK flag. */
    public static final int FLAG_ACK = 0x10;
    /** URG flag. */
    public static final int FLAG_URG = 0x20;
    /** ECE flag. */
    public static final int FLAG_ECE = 0x40;
    /** CWR flag. */
    public static final int FLAG_CWR = 0x80;

    private TcpHeader() {
    }

    /** The source port. */
    public static int sourcePort(ByteBuffer buf, int offset) {
        return Ipv4Header.getUnsignedShort(buf, offset + SOURCE_PORT_OFFSET);
    }

    /** The destination port. */
    public static int destinationPort(ByteBuffer buf, int offset) {
        return Ipv4Header.getUnsignedShort(buf, offset + DESTINATION_PORT_OFFSET);
    }

    /** Both ports as one int: source port in the high 16 bits. */
    public static int ports(ByteBuffer buf, int offset) {
        return Ipv4Header.getIntBigEndian(buf, offset + SOURCE_PORT_OFFSET);
    }

    /** The sequence number. */
    public static int sequence(ByteBuffer buf, int offset) {
        return Ipv4Header.getIntBigEndian(buf, offset + SEQUENCE_OFFSET);
    }

    /** Sets the sequence number. */
    public static void sequence(ByteBuffer buf, int offset, int sequence) {
        Ipv4Header.putIntBigEndian(buf, offset + SEQUENCE_OFFSET, sequence);
    }

    /** The acknowledgment number. */
    public static int acknowledgment(ByteBuffer buf, int offset) {
        return Ipv4Header.getIntBigEndian(buf, offset + ACKNOWLEDGMENT_OFFSET);
    }

    /** The header length in bytes: data offset × 4. */
    public static int headerLength(ByteBuffer buf, int offset) {
        return (buf.get(offset + DATA_OFFSET_OFFSET) >> 4 & 0xf) << 2;
    }

    /** The flags byte (CWR..FIN). */
    public static int flags(ByteBuffer buf, int offset) {
        return buf.get(offset + FLAGS_OFFSET) & 0xff;
    }

    /** Sets the flags byte. */
    public static void flags(ByteBuffer buf, int offset, int flags) {
        buf.put(offset + FLAGS_OFFSET, (byte) flags);
    }

    /** The checksum field. */
    public static int checksum(ByteBuffer buf, int offset) {
        return Ipv4Header.getUnsignedShort(buf, offset + CHECKSUM_OFFSET);
    }

    /** Sets the checksum field. */
    public static void checksum(ByteBuffer buf, int offset, int checksum) {
        Ipv4Header.putShort(buf, offset + CHECKSUM_OFFSET, checksum);
    }

    /**
     * Whether the TCP checksum of the IPv4 packet at {@code ipOffset} verifies: the sum of the pseudo-header and the
     * whole segment {@code [ipOffset + ihl, ipOffset + totalLength)} is 0xffff. The caller has validated the lengths.
     */
    public static boolean isChecksumValid(ByteBuffer buf, int ipOffset, int ihl, int totalLength) {
        int l4Length = totalLength - ihl;
        long sum = Checksums.pseudoHeaderSum(buf, ipOffset, l4Length) + Checksums.sum(buf, ipOffset + ihl, l4Length);
        return Checksums.fold(sum) == 0xffff;
    }
}
