package io.overlay4j;

import java.nio.ByteBuffer;

/**
 * Turns inner IP packets into UDP payloads and back, in place. Implementations are stateless and thread-safe, and
 * allocate nothing per packet.
 *
 * <p>Buffer contract: the caller owns the buffer. {@link #encapsulate} expects the inner packet in
 * {@code [position, limit)} with at least {@link #headroom()} bytes before {@code position}; on success the UDP
 * payload is in {@code [position, limit)}. {@link #decapsulate} expects a UDP payload in {@code [position, limit)} and
 * on success leaves the inner packet there.
 */
public interface Encapsulator {

    /** The UDP port peers listen on unless configured otherwise (8285 for flannel udp). */
    int defaultPort();

    /**
     * Bytes the encapsulation costs on the wire, outer IPv4 and UDP headers included: 28 for flannel udp. The TUN MTU is
     * the underlay MTU minus this.
     */
    int overhead();

    /** Bytes written in front of the inner packet within the UDP payload (0 for flannel udp). */
    int headroom();

    /**
     * Validates an inner packet read from the TUN and encapsulates it in place.
     *
     * @param packet the inner packet in {@code [position, limit)}
     * @param mtu    the largest inner packet allowed
     * @return {@code null} if the payload is ready to send, else why the packet must be dropped
     */
    DropReason encapsulate(ByteBuffer packet, int mtu);

    /**
     * Validates a received UDP payload and decapsulates it in place.
     *
     * @param datagram the UDP payload in {@code [position, limit)}
     * @param mtu      the largest inner packet allowed
     * @return {@code null} if the inner packet is ready to write to the TUN, else why it must be dropped
     */
    DropReason decapsulate(ByteBuffer datagram, int mtu);
}
