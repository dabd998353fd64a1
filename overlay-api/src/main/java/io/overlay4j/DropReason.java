package io.overlay4j;

/** Why the data plane dropped a packet. Every drop is counted under exactly one reason in {@link TrafficStats}. */
public enum DropReason {
    /** Shorter than an IPv4 header (20 bytes). */
    RUNT,
    /** IP version is not 4 (for example an IPv6 router solicitation read from the TUN). */
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
    /** A received packet's inner source lies outside the overlay network. */
    FOREIGN_SOURCE,
    /** The UDP send failed. */
    SEND_FAILED,
    /** Writing to the TUN device failed. */
    TUN_WRITE_FAILED
}
