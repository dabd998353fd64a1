package io.overlay4j.bench.fuzz;

import io.overlay4j.DropReason;

/**
 * The kinds of datagram {@link HostileDatagrams} makes, each with the verdict a receiving overlay4j node must reach:
 * the {@link DropReason} it counts the datagram under, or admission. Names say what is wrong with the datagram; the
 * javadoc of each constant says what the receiver does with it.
 *
 * <p>Most kinds carry a well-formed inner IPv4/UDP packet addressed to the target's victim (a container in the
 * receiver's subnet, at the capture port) with a marker in its payload ({@link HostileDatagrams#markedCase}), so a
 * socket at the victim (or at any address a forged destination names) can tell which kind got through.
 */
public enum FuzzCase {
    /** Well formed, from the leased sender, inner source in its subnet, to the victim: admitted and delivered. */
    VALID(Sender.LEASED),
    /** Valid, with bytes after the IPv4 total length (link padding): trimmed, admitted and delivered. */
    TRAILING_BYTES(Sender.LEASED),
    /** A valid datagram from an underlay address that holds no lease: {@link DropReason#UNKNOWN_SENDER}. */
    UNKNOWN_SENDER(Sender.STRANGER),
    /**
     * A valid datagram from the leased sender's address but another source port; flannel udp fixes the port, so
     * {@link DropReason#UNKNOWN_SENDER} (VXLAN senders pick ports per flow: not made for VXLAN).
     */
    WRONG_SOURCE_PORT(Sender.WRONG_PORT),
    /**
     * Random bytes (flannel udp: the version nibble never 4, so {@link DropReason#NOT_IPV4}; VXLAN: the flags byte
     * never 0x08, so {@link DropReason#BAD_ENCAPSULATION}).
     */
    RANDOM_BYTES(Sender.LEASED),
    /** Fewer bytes than an IPv4 header (VXLAN: than the 22 header bytes): {@link DropReason#RUNT}. */
    RUNT(Sender.LEASED),
    /** An IPv6 packet (VXLAN: EtherType IPv6): {@link DropReason#NOT_IPV4}. */
    NOT_IPV4(Sender.LEASED),
    /** An IPv4 header length below 5 words: {@link DropReason#BAD_HEADER}. */
    IHL_TOO_SMALL(Sender.LEASED),
    /** An IPv4 header length beyond the bytes received: {@link DropReason#BAD_HEADER}. */
    IHL_BEYOND_PACKET(Sender.LEASED),
    /** An IPv4 total length shorter than the header: {@link DropReason#BAD_HEADER}. */
    TOTAL_LENGTH_BELOW_HEADER(Sender.LEASED),
    /** An IPv4 total length beyond the bytes received (a truncated packet): {@link DropReason#TRUNCATED}. */
    TOTAL_LENGTH_BEYOND_DATA(Sender.LEASED),
    /** A well-formed inner packet larger than the receiver's MTU: {@link DropReason#OVERSIZE}. */
    OVERSIZE(Sender.LEASED),
    /**
     * TTL 0: flannel udp decrements and drops it ({@link DropReason#TTL_EXPIRED}); VXLAN carries it unchanged, it is
     * admitted and the receiving host's kernel refuses to forward it (never delivered).
     */
    TTL_0(Sender.LEASED),
    /** TTL 1: as {@link #TTL_0}. */
    TTL_1(Sender.LEASED),
    /**
     * A first fragment (more-fragments set, offset 0) that is never completed: admitted (flannel forwards fragments),
     * never delivered as a datagram.
     */
    FRAGMENT_FIRST(Sender.LEASED),
    /** A later fragment (offset not 0) of a datagram never completed: admitted, never delivered. */
    FRAGMENT_LATER(Sender.LEASED),
    /**
     * A wrong IPv4 header checksum: admitted (the data plane, like flannel, does not verify it) and dropped by the
     * receiving host's kernel, never delivered.
     */
    BAD_HEADER_CHECKSUM(Sender.LEASED),
    /** The inner source forged to an address of the receiver's own subnet: {@link DropReason#SPOOFED_SOURCE}. */
    SOURCE_RECEIVER_SUBNET(Sender.LEASED),
    /** The inner source forged to another leased subnet's address: {@link DropReason#SPOOFED_SOURCE}. */
    SOURCE_OTHER_LEASE(Sender.LEASED),
    /** The inner source in the overlay network but in no lease's subnet: {@link DropReason#SPOOFED_SOURCE}. */
    SOURCE_UNLEASED(Sender.LEASED),
    /**
     * The inner source outside the overlay network (an underlay address, loopback, a documentation address):
     * {@link DropReason#FOREIGN_SOURCE}.
     */
    SOURCE_OUTSIDE_NETWORK(Sender.LEASED),
    /**
     * The inner destination is the sending host's underlay address (the leased sender's, or the other host's): an
     * open relay back into the hosts. {@link DropReason#FOREIGN_DESTINATION}.
     */
    DESTINATION_SENDING_HOST(Sender.LEASED),
    /** The inner destination is the receiving host's own underlay address: {@link DropReason#FOREIGN_DESTINATION}. */
    DESTINATION_RECEIVING_HOST(Sender.LEASED),
    /** The inner destination is a container of another leased subnet: {@link DropReason#FOREIGN_DESTINATION}. */
    DESTINATION_OTHER_LEASE(Sender.LEASED),
    /**
     * The inner destination lies outside the overlay network and the hosts (documentation, loopback, multicast,
     * broadcast): {@link DropReason#FOREIGN_DESTINATION}.
     */
    DESTINATION_OUTSIDE_NETWORK(Sender.LEASED),
    /** VXLAN flags other than 0x08 (I): {@link DropReason#BAD_ENCAPSULATION}. */
    VXLAN_BAD_FLAGS(Sender.LEASED),
    /** VXLAN reserved bits set: {@link DropReason#BAD_ENCAPSULATION}. */
    VXLAN_RESERVED_BITS(Sender.LEASED),
    /** Another VNI: {@link DropReason#BAD_ENCAPSULATION}. */
    VXLAN_WRONG_VNI(Sender.LEASED),
    /**
     * An inner destination MAC other than the receiver's VtepMAC (another unicast MAC, broadcast, the sender's own):
     * {@link DropReason#BAD_ENCAPSULATION}.
     */
    VXLAN_WRONG_MAC(Sender.LEASED),
    /** An inner ARP frame (EtherType 0x0806): {@link DropReason#NOT_IPV4}, never answered. */
    VXLAN_ARP(Sender.LEASED);

    /** Which of the fuzzer's sockets sends a case. */
    public enum Sender {
        /** The address (and port) of a current lease: the receiver knows it. */
        LEASED,
        /** An address that holds no lease. */
        STRANGER,
        /** The leased address with another source port. */
        WRONG_PORT
    }

    private final Sender sender;

    FuzzCase(Sender sender) {
        this.sender = sender;
    }

    /** The socket that sends this case. */
    public Sender sender() {
        return sender;
    }

    /** Whether the fuzzer makes this case for an encapsulation. */
    public boolean appliesTo(Encapsulation encapsulation) {
        if (name().startsWith("VXLAN_")) {
            return encapsulation == Encapsulation.VXLAN;
        }
        return this != WRONG_SOURCE_PORT || encapsulation == Encapsulation.FLANNEL_UDP;
    }

    /**
     * The reason a receiving overlay4j node must count this case under, or {@code null} if it must admit it (write it
     * to its TUN).
     */
    public DropReason expected(Encapsulation encapsulation) {
        boolean vxlan = encapsulation == Encapsulation.VXLAN;
        switch (this) {
            case VALID:
            case TRAILING_BYTES:
            case FRAGMENT_FIRST:
            case FRAGMENT_LATER:
            case BAD_HEADER_CHECKSUM:
                return null;
            case UNKNOWN_SENDER:
            case WRONG_SOURCE_PORT:
                return DropReason.UNKNOWN_SENDER;
            case RANDOM_BYTES:
                return vxlan ? DropReason.BAD_ENCAPSULATION : DropReason.NOT_IPV4;
            case RUNT:
                return DropReason.RUNT;
            case NOT_IPV4:
            case VXLAN_ARP:
                return DropReason.NOT_IPV4;
            case IHL_TOO_SMALL:
            case IHL_BEYOND_PACKET:
            case TOTAL_LENGTH_BELOW_HEADER:
                return DropReason.BAD_HEADER;
            case TOTAL_LENGTH_BEYOND_DATA:
                return DropReason.TRUNCATED;
            case OVERSIZE:
                return DropReason.OVERSIZE;
            case TTL_0:
            case TTL_1:
                return vxlan ? null : DropReason.TTL_EXPIRED;
            case SOURCE_RECEIVER_SUBNET:
            case SOURCE_OTHER_LEASE:
            case SOURCE_UNLEASED:
                return DropReason.SPOOFED_SOURCE;
            case SOURCE_OUTSIDE_NETWORK:
                return DropReason.FOREIGN_SOURCE;
            case DESTINATION_SENDING_HOST:
            case DESTINATION_RECEIVING_HOST:
            case DESTINATION_OTHER_LEASE:
            case DESTINATION_OUTSIDE_NETWORK:
                return DropReason.FOREIGN_DESTINATION;
            case VXLAN_BAD_FLAGS:
            case VXLAN_RESERVED_BITS:
            case VXLAN_WRONG_VNI:
            case VXLAN_WRONG_MAC:
                return DropReason.BAD_ENCAPSULATION;
            default:
                throw new AssertionError(this);
        }
    }

    /**
     * Whether a datagram of this case, once admitted, reaches a socket at its inner destination: true only for
     * {@link #VALID} and {@link #TRAILING_BYTES}. Everything else must reach no socket anywhere (dropped by the node,
     * or, when admitted, by the receiving host's kernel).
     */
    public boolean delivered() {
        return this == VALID || this == TRAILING_BYTES;
    }
}
