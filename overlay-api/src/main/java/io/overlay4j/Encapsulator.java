package io.overlay4j;

import java.nio.ByteBuffer;

/**
 * An encapsulation of inner IPv4 packets in UDP payloads (flannel's {@code udp} format, VXLAN, ...), used by a
 * userspace data plane. Implementations are immutable and thread-safe and allocate nothing per packet.
 *
 * <p>What the data plane does around an encapsulator, per packet:
 * <ul>
 *   <li>egress (TUN → network): it validates the inner IPv4 packet (length, version, header, MTU), looks up the peer
 *   owning the destination, and only then calls {@link #encapsulate} with that peer's {@linkplain #peerContext
 *   context}. A super-packet split by segmentation offload is encapsulated segment by segment (each segment gets its
 *   own header), so the verdict of {@code encapsulate} must depend only on header fields every segment shares
 *   (the data plane applies the first segment's verdict to all);</li>
 *   <li>ingress (network → TUN): it calls {@link #decapsulate} on each received datagram (on every datagram of a
 *   coalesced GRO receive separately), then validates the inner IPv4 packet and decides whether to admit it.</li>
 * </ul>
 *
 * <p>Per-peer headers: an encapsulation may put up to {@link #headroom()} bytes in front of each inner packet, and
 * those bytes may differ per peer (for VXLAN the inner Ethernet header names the peer's MAC). They are computed once,
 * by {@link #peerContext}, when a peer enters the data plane's peer table, and handed back to every
 * {@link #encapsulate} call for that peer.
 *
 * <p>Buffer contract: the caller owns the buffer. {@link #encapsulate} gets the inner packet in
 * {@code [position, limit)} with at least {@link #headroom()} writable bytes before {@code position}; on success the
 * UDP payload is in {@code [position, limit)}. {@link #decapsulate} gets a UDP payload in {@code [position, limit)}
 * and on success leaves the inner packet there. Only absolute gets and puts, position and limit changes.
 */
public interface Encapsulator {

    /** The UDP port peers listen on unless configured otherwise (8285 for flannel udp, 8472 for VXLAN). */
    int defaultPort();

    /**
     * Bytes the encapsulation costs on the wire, outer IPv4 and UDP headers included: 28 for flannel udp, 50 for
     * VXLAN. The TUN MTU is the underlay MTU minus this.
     */
    int overhead();

    /** Bytes written in front of the inner packet within the UDP payload: 0 for flannel udp, 22 for VXLAN. */
    int headroom();

    /**
     * Whether peers send their datagrams from the port they listen on (the one socket of a flannel udp node), so a
     * receiver may insist on it; false where senders pick source ports freely (the kernel's VXLAN device hashes
     * flows over a port range). Default true.
     */
    default boolean fixedSourcePort() {
        return true;
    }

    /**
     * What {@link #encapsulate} needs to know about one peer, computed once when the peer enters the peer table
     * (from its lease's backend data, e.g. its VTEP MAC address). Opaque to the data plane; never null.
     *
     * @throws IllegalArgumentException if this encapsulation cannot reach the peer with this lease (wrong backend
     *                                  type, malformed or missing backend data): the data plane skips and counts
     *                                  the lease, naming the reason from the message
     */
    Object peerContext(Lease lease);

    /**
     * Encapsulates, in place, an inner packet that the data plane has validated and routed to a peer: writes
     * exactly {@link #headroom()} bytes in front of it (the position moves back by that much; the limit stays).
     *
     * @param packet      the inner IPv4 packet in {@code [position, limit)}, {@link #headroom()} bytes free before it
     * @param peerContext what {@link #peerContext} returned for the peer
     * @param mtu         the largest inner packet allowed
     * @return {@code null} if the payload is ready to send, else why the packet must be dropped (e.g. the TTL ran
     *         out, for an encapsulation that decrements it)
     */
    DropReason encapsulate(ByteBuffer packet, Object peerContext, int mtu);

    /**
     * Checks a received UDP payload and decapsulates it in place.
     *
     * @param datagram the UDP payload in {@code [position, limit)}
     * @param mtu      the largest inner packet allowed
     * @return {@code null} if the inner packet is in {@code [position, limit)}, else why the datagram must be dropped
     */
    DropReason decapsulate(ByteBuffer datagram, int mtu);
}
