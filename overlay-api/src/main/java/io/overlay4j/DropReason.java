package io.overlay4j;

/** Why the data plane dropped a packet. Every drop is counted under exactly one reason in {@link TrafficStats}. */
public enum DropReason {
    /** Shorter than an IPv4 header (20 bytes), or than the encapsulation's own header. */
    RUNT,
    /** IP version is not 4 (for example an IPv6 router solicitation read from the TUN), or not IPv4 inside. */
    NOT_IPV4,
    /** The IPv4 header is malformed: header length below 20 bytes or beyond the packet. */
    BAD_HEADER,
    /** The IPv4 total length claims more bytes than were received. */
    TRUNCATED,
    /** Larger than the TUN MTU. */
    OVERSIZE,
    /** The TTL reached zero on decrement. */
    TTL_EXPIRED,
    /** No peer owns the destination; an ICMP net-unreachable was written back where allowed. */
    NO_ROUTE,
    /**
     * A received packet's inner source lies outside the overlay network (and so in no lease's subnet): for example a
     * host routing non-masqueraded traffic into the overlay, or a forged source.
     */
    FOREIGN_SOURCE,
    /** The UDP send failed. */
    SEND_FAILED,
    /** Writing to the TUN device failed. */
    TUN_WRITE_FAILED,
    /**
     * A datagram from an address (or port, where the encapsulation fixes it) that holds no current lease. No ICMP
     * reply is sent.
     */
    UNKNOWN_SENDER,
    /**
     * A datagram whose inner source lies in the overlay network but not in the subnet of the lease its sender holds
     * (a forged source, e.g. one of the receiver's own containers). No ICMP reply is sent.
     */
    SPOOFED_SOURCE,
    /**
     * A datagram whose inner destination is not in the receiver's own subnet (another host's containers or underlay
     * addresses: the receiver would be a relay). No ICMP reply is sent.
     */
    FOREIGN_DESTINATION,
    /**
     * The encapsulation's own header is malformed or not addressed to this node (for VXLAN: flags, reserved bits, VNI
     * or destination MAC address).
     */
    BAD_ENCAPSULATION
}
