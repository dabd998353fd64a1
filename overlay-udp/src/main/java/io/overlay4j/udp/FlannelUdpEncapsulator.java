package io.overlay4j.udp;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;

/**
 * flannel's {@code udp} wire format: the UDP payload is exactly the inner IPv4 packet, with no header of its own. The
 * only change on either leg is the TTL decrement with an incremental header-checksum update (RFC 1624), which flannel
 * does on the sending and again on the receiving node; the results are byte-identical to flannel's proxy.
 *
 * <p>Unlike flannel, both directions validate the packet first, in this order: fewer than 20 bytes is
 * {@link DropReason#RUNT}; a version other than 4 is {@link DropReason#NOT_IPV4}; an IHL below 5, a header longer than
 * the bytes present or a total length shorter than the header is {@link DropReason#BAD_HEADER}; a total length beyond
 * the bytes present is {@link DropReason#TRUNCATED}; more bytes than the MTU is {@link DropReason#OVERSIZE};
 * trailing bytes beyond the total length (link padding) are then trimmed by lowering the limit; a TTL of 0 or 1 is
 * {@link DropReason#TTL_EXPIRED} (flannel would wrap a TTL of 0 to 255 and forward it).
 *
 * <p>Stateless, thread-safe, allocation-free: only absolute gets and puts, plus the limit change for padding.
 */
public final class FlannelUdpEncapsulator implements Encapsulator {

    /** The one instance. */
    public static final FlannelUdpEncapsulator INSTANCE = new FlannelUdpEncapsulator();

    /** flannel's default UDP port. */
    public static final int DEFAULT_PORT = 8285;

    /** Outer IPv4 header (20) plus UDP header (8). */
    public static final int OVERHEAD = 28;

    private FlannelUdpEncapsulator() {
    }

    /** The one instance (same as {@link #INSTANCE}). */
    public static FlannelUdpEncapsulator create() {
        return INSTANCE;
    }

    /** {@inheritDoc} 8285. */
    @Override
    public int defaultPort() {
        return DEFAULT_PORT;
    }

    /** {@inheritDoc} 28. */
    @Override
    public int overhead() {
        return OVERHEAD;
    }

    /** {@inheritDoc} 0: the payload is the inner packet itself. */
    @Override
    public int headroom() {
        return 0;
    }

    /** {@inheritDoc} The packet stays where it is; only the TTL, the checksum and (for padding) the limit change. */
    @Override
    public DropReason encapsulate(ByteBuffer packet, int mtu) {
        return validateAndDecrementTtl(packet, mtu);
    }

    /** {@inheritDoc} The packet stays where it is; only the TTL, the checksum and (for padding) the limit change. */
    @Override
    public DropReason decapsulate(ByteBuffer datagram, int mtu) {
        return validateAndDecrementTtl(datagram, mtu);
    }

    /**
     * Validates the IPv4 packet in {@code [position, limit)} as described in the class comment, trims padding and
     * decrements the TTL.
     *
     * @return {@code null} on success, else the reason to drop; on a drop the TTL is untouched
     */
    static DropReason validateAndDecrementTtl(ByteBuffer buf, int mtu) {
        DropReason reason = validate(buf, mtu);
        if (reason != null) {
            return reason;
        }
        int offset = buf.position();
        if (Ipv4Header.ttl(buf, offset) <= 1) {
            return DropReason.TTL_EXPIRED;
        }
        Ipv4Header.decrementTtl(buf, offset);
        return null;
    }

    /**
     * Validates the IPv4 packet in {@code [position, limit)} without changing its bytes: version, header length, total
     * length and MTU, trimming trailing padding by lowering the limit.
     *
     * @return {@code null} if the packet is well formed, else the reason to drop it
     */
    public static DropReason validate(ByteBuffer buf, int mtu) {
        int offset = buf.position();
        int length = buf.limit() - offset;
        if (length < Ipv4Header.MIN_LENGTH) {
            return DropReason.RUNT;
        }
        if (Ipv4Header.version(buf, offset) != 4) {
            return DropReason.NOT_IPV4;
        }
        int headerLength = Ipv4Header.headerLength(buf, offset);
        if (headerLength < Ipv4Header.MIN_LENGTH || headerLength > length) {
            return DropReason.BAD_HEADER;
        }
        int totalLength = Ipv4Header.totalLength(buf, offset);
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

    @Override
    public String toString() {
        return "FlannelUdpEncapsulator[port 8285, overhead 28]";
    }
}
