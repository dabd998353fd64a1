package io.overlay4j.udp;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.Lease;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;

/**
 * flannel's {@code udp} wire format: the UDP payload is exactly the inner IPv4 packet, with no header of its own. The
 * only change on either leg is the TTL decrement with an incremental header-checksum update (RFC 1624), which flannel
 * does on the sending and again on the receiving node; the results are byte-identical to flannel's proxy. Every lease
 * is usable (flannel's udp backend routes to any lease whatever its backend type) and needs no per-peer state.
 *
 * <p>On egress the data plane has validated the packet and found its peer before {@link #encapsulate}, which only
 * checks and decrements the TTL: a TTL of 0 or 1 is {@link DropReason#TTL_EXPIRED} (flannel would wrap a TTL of 0 to
 * 255 and forward it). Because the lookup comes first, a TTL-1 packet to an unleased destination is answered like
 * flannel's proxy does: no route, ICMP net-unreachable.
 *
 * <p>Unlike flannel, {@link #decapsulate} validates the packet first, in this order: fewer than 20 bytes is
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

    /** {@inheritDoc} The same object for every lease: flannel udp needs nothing per peer. */
    @Override
    public Object peerContext(Lease lease) {
        return this;
    }

    /** {@inheritDoc} The packet stays where it is; only the TTL and the header checksum change. */
    @Override
    public DropReason encapsulate(ByteBuffer packet, Object peerContext, int mtu) {
        int offset = packet.position();
        if (Ipv4Header.ttl(packet, offset) <= 1) {
            return DropReason.TTL_EXPIRED;
        }
        Ipv4Header.decrementTtl(packet, offset);
        return null;
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
     * length and MTU, trimming trailing padding by lowering the limit (see the class comment for the order).
     *
     * @return {@code null} if the packet is well formed, else the reason to drop it
     */
    public static DropReason validate(ByteBuffer buf, int mtu) {
        return Ipv4Header.validate(buf, mtu);
    }

    @Override
    public String toString() {
        return "FlannelUdpEncapsulator[port 8285, overhead 28]";
    }
}
