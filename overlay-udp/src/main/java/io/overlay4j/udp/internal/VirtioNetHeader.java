package io.overlay4j.udp.internal;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Flyweight access to a {@code struct virtio_net_hdr} (linux/virtio_net.h, 10 bytes) at an absolute offset of a
 * {@link ByteBuffer}: the header a TUN device opened with {@code IFF_VNET_HDR} puts in front of every packet it reads
 * and expects in front of every packet written to it. Static methods with absolute gets and puts only; nothing is
 * allocated and the buffer's position, limit and byte order do not matter.
 *
 * <p>The 16-bit fields are in the <em>CPU's</em> byte order (a TUN device is "legacy" virtio, host-endian unless
 * {@code TUNSETVNETLE/BE} say otherwise), unlike the network-order IP headers around it.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Flags     |   GSO type    |   Header length (host order)  |  0  FLAGS_OFFSET, GSO_TYPE_OFFSET,
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        HDR_LEN_OFFSET
 * |     GSO size (host order)     | Checksum start (host order)   |  4  GSO_SIZE_OFFSET, CSUM_START_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Checksum offset (host order)  |                                  8  CSUM_OFFSET_OFFSET
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * </pre>
 *
 * <ul>
 *   <li>Flags: {@link #FLAG_NEEDS_CSUM} (the L4 checksum is partial: its field holds the pseudo-header sum, and the
 *   checksum over {@code [csum_start, end)} must be stored at {@code csum_start + csum_offset}),
 *   {@link #FLAG_DATA_VALID} (the checksum was verified).</li>
 *   <li>GSO type: {@link #GSO_NONE}, {@link #GSO_TCPV4}, {@link #GSO_TCPV6}, {@link #GSO_UDP_L4}, optionally ORed
 *   with {@link #GSO_ECN} (the super-packet has CWR set).</li>
 *   <li>Header length: L3 + L4 header bytes (a hint: recompute it, do not trust it).</li>
 *   <li>GSO size: payload bytes per segment (the MSS), for a GSO packet.</li>
 *   <li>Checksum start / offset: where the L4 header starts (from the start of the packet, after this header) and
 *   where in it the checksum field is (16 for TCP, 6 for UDP).</li>
 * </ul>
 */
public final class VirtioNetHeader {
    /** Flags, 8 bits. */
    public static final int FLAGS_OFFSET = 0;
    /** GSO type, 8 bits. */
    public static final int GSO_TYPE_OFFSET = 1;
    /** Header length, 16 bits host order. */
    public static final int HDR_LEN_OFFSET = 2;
    /** GSO size, 16 bits host order. */
    public static final int GSO_SIZE_OFFSET = 4;
    /** Checksum start, 16 bits host order. */
    public static final int CSUM_START_OFFSET = 6;
    /** Checksum offset, 16 bits host order. */
    public static final int CSUM_OFFSET_OFFSET = 8;
    /** {@code sizeof(struct virtio_net_hdr)}. */
    public static final int LENGTH = 10;

    /** {@code VIRTIO_NET_HDR_F_NEEDS_CSUM}: the L4 checksum must be completed. */
    public static final int FLAG_NEEDS_CSUM = 1;
    /** {@code VIRTIO_NET_HDR_F_DATA_VALID}: the checksum is known to be good. */
    public static final int FLAG_DATA_VALID = 2;

    /** {@code VIRTIO_NET_HDR_GSO_NONE}: not a GSO packet. */
    public static final int GSO_NONE = 0;
    /** {@code VIRTIO_NET_HDR_GSO_TCPV4}: an IPv4 TCP super-packet. */
    public static final int GSO_TCPV4 = 1;
    /** {@code VIRTIO_NET_HDR_GSO_TCPV6}: an IPv6 TCP super-packet. */
    public static final int GSO_TCPV6 = 4;
    /** {@code VIRTIO_NET_HDR_GSO_UDP_L4}: a UDP super-datagram (USO), IPv4 or IPv6. */
    public static final int GSO_UDP_L4 = 5;
    /** {@code VIRTIO_NET_HDR_GSO_ECN}: a flag ORed into the GSO type: the TCP super-packet has CWR set. */
    public static final int GSO_ECN = 0x80;

    /** The checksum offset of TCP (its checksum field within its header). */
    public static final int TCP_CSUM_OFFSET = 16;
    /** The checksum offset of UDP. */
    public static final int UDP_CSUM_OFFSET = 6;

    private static final VarHandle NATIVE_SHORT =
            MethodHandles.byteBufferViewVarHandle(short[].class, ByteOrder.nativeOrder());

    private VirtioNetHeader() {
    }

    /** The flags byte. */
    public static int flags(ByteBuffer buf, int offset) {
        return buf.get(offset + FLAGS_OFFSET) & 0xff;
    }

    /** The GSO type byte, {@link #GSO_ECN} included. */
    public static int gsoType(ByteBuffer buf, int offset) {
        return buf.get(offset + GSO_TYPE_OFFSET) & 0xff;
    }

    /** The header length hint. */
    public static int hdrLen(ByteBuffer buf, int offset) {
        return getHostShort(buf, offset + HDR_LEN_OFFSET);
    }

    /** The GSO size (MSS). */
    public static int gsoSize(ByteBuffer buf, int offset) {
        return getHostShort(buf, offset + GSO_SIZE_OFFSET);
    }

    /** The checksum start, from the start of the packet. */
    public static int csumStart(ByteBuffer buf, int offset) {
        return getHostShort(buf, offset + CSUM_START_OFFSET);
    }

    /** The checksum offset, from the checksum start. */
    public static int csumOffset(ByteBuffer buf, int offset) {
        return getHostShort(buf, offset + CSUM_OFFSET_OFFSET);
    }

    /** Sets the flags byte. */
    public static void flags(ByteBuffer buf, int offset, int flags) {
        buf.put(offset + FLAGS_OFFSET, (byte) flags);
    }

    /** Sets the GSO type byte. */
    public static void gsoType(ByteBuffer buf, int offset, int gsoType) {
        buf.put(offset + GSO_TYPE_OFFSET, (byte) gsoType);
    }

    /** Sets the header length. */
    public static void hdrLen(ByteBuffer buf, int offset, int hdrLen) {
        putHostShort(buf, offset + HDR_LEN_OFFSET, hdrLen);
    }

    /** Sets the GSO size. */
    public static void gsoSize(ByteBuffer buf, int offset, int gsoSize) {
        putHostShort(buf, offset + GSO_SIZE_OFFSET, gsoSize);
    }

    /** Sets the checksum start. */
    public static void csumStart(ByteBuffer buf, int offset, int csumStart) {
        putHostShort(buf, offset + CSUM_START_OFFSET, csumStart);
    }

    /** Sets the checksum offset. */
    public static void csumOffset(ByteBuffer buf, int offset, int csumOffset) {
        putHostShort(buf, offset + CSUM_OFFSET_OFFSET, csumOffset);
    }

    /** Writes all fields at once. */
    public static void set(ByteBuffer buf, int offset, int flags, int gsoType, int hdrLen, int gsoSize,
                           int csumStart, int csumOffset) {
        flags(buf, offset, flags);
        gsoType(buf, offset, gsoType);
        hdrLen(buf, offset, hdrLen);
        gsoSize(buf, offset, gsoSize);
        csumStart(buf, offset, csumStart);
        csumOffset(buf, offset, csumOffset);
    }

    /** Writes an all-zero header: no flags, {@link #GSO_NONE}, a complete packet. */
    public static void clear(ByteBuffer buf, int offset) {
        buf.putLong(offset, 0L);
        buf.putShort(offset + 8, (short) 0);
    }

    private static int getHostShort(ByteBuffer buf, int index) {
        return (short) NATIVE_SHORT.get(buf, index) & 0xffff;
    }

    private static void putHostShort(ByteBuffer buf, int index, int value) {
        NATIVE_SHORT.set(buf, index, (short) value);
    }
}
