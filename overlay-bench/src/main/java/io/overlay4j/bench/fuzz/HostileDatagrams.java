package io.overlay4j.bench.fuzz;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Ipv4Prefix;
import java.net.Inet4Address;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Makes hostile and broken datagrams for one overlay4j node's UDP port, each of a known {@link FuzzCase} whose
 * verdict the node must reach. Deterministic: the same target and seed give the same datagrams in the same order.
 * Allocation-free per datagram (writes into the caller's buffer), not thread-safe.
 *
 * <p>Inner packets that are well formed enough to be routed are IPv4/UDP to the target's capture port, checksum 0
 * (none), with a 13-byte marker after the UDP header:
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                     magic 0x6f346a66 "o4jf"                   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  case ordinal |            sequence number (64 bits) ...      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * </pre>
 *
 * so any socket the datagram might reach can say which case got through ({@link #markedCase}).
 */
public final class HostileDatagrams {
    /** The marker's first four bytes, "o4jf". */
    public static final int MAGIC = 0x6f346a66;
    /** Inner IPv4 header, UDP header and marker: the shortest marked inner packet. */
    public static final int MARKED_LENGTH = 20 + 8 + 13;
    /** The largest UDP payload. */
    public static final int MAX_DATAGRAM = 65507;

    private static final int IPV4_HEADER = 20;
    private static final int VXLAN_FLAGS = 0x08;
    private static final int ETHERTYPE_IPV4 = 0x0800;
    private static final int ETHERTYPE_ARP = 0x0806;
    private static final int ETHERTYPE_IPV6 = 0x86dd;
    private static final int FLAG_DF = 0x4000;
    private static final int FLAG_MF = 0x2000;
    /** No I bit, I with reserved bits, G (group policy) and I, B and I, I with the lowest bit, all bits, G alone. */
    private static final int[] BAD_VXLAN_FLAGS = {0x00, 0x0c, 0x88, 0x48, 0x09, 0xff, 0x80};

    private final Target target;
    private final Encapsulation encapsulation;
    private final int headroom;
    private final SplittableRandom random;
    private final List<FuzzCase> cases;
    private final Map<FuzzCase.Sender, FuzzCase[]> bySender = new EnumMap<>(FuzzCase.Sender.class);
    private final int[] minSize = new int[FuzzCase.values().length];
    private final int[] maxSize = new int[FuzzCase.values().length];
    private final int[] outsideSources;
    private final int[] outsideDestinations;
    private final int[] sendingHosts;
    private final int unleasedNetwork;
    private final byte[] scratchMac = new byte[6];
    private int ids;

    /**
     * A generator for this target.
     *
     * @param seed the same seed gives the same datagrams
     */
    public HostileDatagrams(Target target, long seed) {
        this.target = requireNonNull(target, "target");
        this.encapsulation = target.encapsulation;
        this.headroom = encapsulation.headroom();
        this.random = new SplittableRandom(seed);
        List<FuzzCase> applicable = new ArrayList<>();
        for (FuzzCase c : FuzzCase.values()) {
            if (c.appliesTo(encapsulation)) {
                applicable.add(c);
            }
        }
        this.cases = Collections.unmodifiableList(applicable);
        for (FuzzCase.Sender s : FuzzCase.Sender.values()) {
            bySender.put(s, applicable.stream().filter(c -> c.sender() == s).toArray(FuzzCase[]::new));
        }
        int mtu = target.mtu;
        for (FuzzCase c : applicable) {
            int min = headroom + MARKED_LENGTH;
            int max = headroom + mtu;
            switch (c) {
                case RUNT:
                    min = 0;
                    max = Math.max(headroom, IPV4_HEADER) - 1;
                    break;
                case RANDOM_BYTES:
                    min = Math.max(headroom, IPV4_HEADER);
                    max = MAX_DATAGRAM;
                    break;
                case NOT_IPV4:
                case IHL_TOO_SMALL:
                case TOTAL_LENGTH_BELOW_HEADER:
                case TOTAL_LENGTH_BEYOND_DATA:
                    min = headroom + IPV4_HEADER;
                    max = MAX_DATAGRAM;
                    break;
                case IHL_BEYOND_PACKET:
                    min = headroom + IPV4_HEADER;
                    max = headroom + 59;
                    break;
                case OVERSIZE:
                    min = headroom + mtu + 1;
                    max = MAX_DATAGRAM;
                    break;
                case TRAILING_BYTES:
                    min = headroom + MARKED_LENGTH + 1;
                    break;
                case VXLAN_ARP:
                    min = headroom + 28;
                    break;
                default:
                    break;
            }
            minSize[c.ordinal()] = min;
            maxSize[c.ordinal()] = max;
        }
        this.outsideSources = outside(target.network, target.senderAddress, target.receiverAddress, 0xc0000201,
                0xc00002fe, 0x7f000001, 0, 0xffffffff, 0xe0000005);
        this.outsideDestinations = outside(target.network, 0xc6336401, 0xc63364fe, 0x7f000001, 0xe0000001,
                0xffffffff, 0, 0x08080808);
        this.sendingHosts = target.otherHost == 0 ? new int[] {target.senderAddress}
                : new int[] {target.senderAddress, target.otherHost};
        this.unleasedNetwork = target.unleasedSubnet.networkInt();
    }

    private static int[] outside(Ipv4Prefix network, int... candidates) {
        return java.util.Arrays.stream(candidates).filter(a -> !network.contains(a)).distinct().toArray();
    }

    /** The target. */
    public Target target() {
        return target;
    }

    /** The cases made for the target's encapsulation, in declaration order. */
    public List<FuzzCase> cases() {
        return cases;
    }

    /** A case sent by {@code sender}, uniformly at random, or null if no case of the encapsulation has that sender. */
    public FuzzCase nextCase(FuzzCase.Sender sender) {
        FuzzCase[] of = bySender.get(sender);
        return of.length == 0 ? null : of[random.nextInt(of.length)];
    }

    /** Any applicable case, uniformly at random. */
    public FuzzCase nextCase() {
        return cases.get(random.nextInt(cases.size()));
    }

    /**
     * A case of the leased sender whose datagrams can have exactly {@code size} bytes (for a run of equal-size
     * datagrams, as one UDP GSO send carries them), uniformly among those.
     *
     * @throws IllegalArgumentException if no case fits (size below the marked length)
     */
    public FuzzCase nextCaseOfSize(int size) {
        FuzzCase[] leased = bySender.get(FuzzCase.Sender.LEASED);
        for (int attempt = 0; attempt < 64; attempt++) {
            FuzzCase c = leased[random.nextInt(leased.length)];
            if (fits(c, size)) {
                return c;
            }
        }
        for (FuzzCase c : leased) {
            if (fits(c, size)) {
                return c;
            }
        }
        throw new IllegalArgumentException("no case makes datagrams of " + size + " bytes");
    }

    /** Whether {@code c} can make a datagram of exactly {@code size} bytes. */
    public boolean fits(FuzzCase c, int size) {
        return c.appliesTo(encapsulation) && size >= minSize[c.ordinal()] && size <= maxSize[c.ordinal()];
    }

    /** The smallest datagram of this case, in bytes. */
    public int minSize(FuzzCase c) {
        return minSize[c.ordinal()];
    }

    /** The largest datagram of this case, in bytes. */
    public int maxSize(FuzzCase c) {
        return maxSize[c.ordinal()];
    }

    /** The smallest size that every equal-size run can have. */
    public int minRunSize() {
        return headroom + MARKED_LENGTH + 1;
    }

    /** The largest size of an equal-size run: the receiver's MTU plus the encapsulation's header. */
    public int maxRunSize() {
        return headroom + target.mtu;
    }

    /**
     * A random size for a datagram of this case, mostly small (half within 160 bytes of its minimum, most of the rest
     * within 1,500), sometimes anywhere up to its maximum.
     */
    public int nextSize(FuzzCase c) {
        return between(minSize[c.ordinal()], maxSize[c.ordinal()]);
    }

    /** A random size for a run of equal-size datagrams, biased small as {@link #nextSize}. */
    public int nextRunSize() {
        return between(minRunSize(), maxRunSize());
    }

    private int between(int min, int max) {
        int r = random.nextInt(16);
        int top = r == 0 ? max : r < 8 ? Math.min(max, min + 160) : Math.min(max, min + 1500);
        return min + random.nextInt(top - min + 1);
    }

    /**
     * Writes one datagram of case {@code c}, exactly {@code size} bytes, at {@code buf[offset]} (absolute puts; the
     * buffer's position and limit do not change).
     *
     * @param sequence written into the marker, for the reader's use
     * @throws IllegalArgumentException if the case does not apply or cannot have this size
     */
    public void write(FuzzCase c, ByteBuffer buf, int offset, int size, long sequence) {
        if (!fits(c, size)) {
            throw new IllegalArgumentException(c + " cannot make a datagram of " + size + " bytes for "
                    + encapsulation);
        }
        if (c == FuzzCase.RUNT) {
            runt(buf, offset, size);
            return;
        }
        if (c == FuzzCase.RANDOM_BYTES) {
            randomBytes(buf, offset, size);
            if (headroom == 0) {
                int nibble = random.nextInt(15);
                nibble = nibble >= 4 ? nibble + 1 : nibble;
                buf.put(offset, (byte) (nibble << 4 | buf.get(offset) & 0x0f));
            } else if ((buf.get(offset) & 0xff) == VXLAN_FLAGS) {
                buf.put(offset, (byte) (VXLAN_FLAGS ^ (1 + random.nextInt(255))));
            }
            return;
        }
        int at = offset + headroom;
        int length = size - headroom;
        if (headroom > 0) {
            vxlanHeader(c, buf, offset);
        }
        int src = hostIn(target.senderSubnet);
        int dst = target.victim;
        // At least 3: flannel udp's receiver decrements once and the receiving host's kernel once more on its way to
        // the container, which must still get it.
        int ttl = 3 + random.nextInt(253);
        int flags = FLAG_DF;
        int total = length;
        int ihl = 5;
        boolean checksumOk = true;
        switch (c) {
            case VALID:
            case UNKNOWN_SENDER:
            case WRONG_SOURCE_PORT:
            case VXLAN_BAD_FLAGS:
            case VXLAN_RESERVED_BITS:
            case VXLAN_WRONG_VNI:
            case VXLAN_WRONG_MAC:
            case OVERSIZE:
                break;
            case TRAILING_BYTES:
                total = MARKED_LENGTH + random.nextInt(length - MARKED_LENGTH);
                break;
            case NOT_IPV4:
                ipv6(buf, at, length);
                return;
            case VXLAN_ARP:
                arp(buf, at, length);
                return;
            case IHL_TOO_SMALL:
                ihl = random.nextInt(5);
                break;
            case IHL_BEYOND_PACKET:
                ihl = (length + 4) / 4 + random.nextInt(15 - (length + 4) / 4 + 1);
                break;
            case TOTAL_LENGTH_BELOW_HEADER:
                total = random.nextInt(IPV4_HEADER);
                break;
            case TOTAL_LENGTH_BEYOND_DATA:
                total = length + 1 + random.nextInt(65535 - length);
                break;
            case TTL_0:
                ttl = 0;
                break;
            case TTL_1:
                ttl = 1;
                break;
            case FRAGMENT_FIRST:
                flags = FLAG_MF;
                break;
            case FRAGMENT_LATER:
                flags = (random.nextBoolean() ? FLAG_MF : 0) | 1 + random.nextInt(0x1fff);
                break;
            case BAD_HEADER_CHECKSUM:
                checksumOk = false;
                break;
            case SOURCE_RECEIVER_SUBNET:
                src = hostIn(target.receiverSubnet);
                break;
            case SOURCE_OTHER_LEASE:
                src = hostIn(target.otherSubnet);
                break;
            case SOURCE_UNLEASED:
                src = unleasedNetwork | random.nextInt(~target.unleasedSubnet.maskInt() + 1);
                break;
            case SOURCE_OUTSIDE_NETWORK:
                src = outsideSources[random.nextInt(outsideSources.length)];
                break;
            case DESTINATION_SENDING_HOST:
                dst = sendingHosts[random.nextInt(sendingHosts.length)];
                break;
            case DESTINATION_RECEIVING_HOST:
                dst = target.receiverAddress;
                break;
            case DESTINATION_OTHER_LEASE:
                dst = hostIn(target.otherSubnet);
                break;
            case DESTINATION_OUTSIDE_NETWORK:
                dst = outsideDestinations[random.nextInt(outsideDestinations.length)];
                break;
            default:
                throw new AssertionError(c);
        }
        // An even identification for first fragments and odd for later ones: no two ever make a whole datagram.
        int id = (ids++ & 0x7fff) << 1 | (c == FuzzCase.FRAGMENT_LATER ? 1 : 0);
        ipv4(c, buf, at, length, total, ihl, id, flags, ttl, src, dst, checksumOk, sequence);
    }

    private void ipv4(FuzzCase c, ByteBuffer b, int at, int length, int total, int ihl, int id, int flags, int ttl,
                      int src, int dst, boolean checksumOk, long sequence) {
        b.put(at, (byte) (0x40 | ihl));
        b.put(at + 1, (byte) 0);
        b.putShort(at + 2, (short) total);
        b.putShort(at + 4, (short) id);
        b.putShort(at + 6, (short) flags);
        b.put(at + 8, (byte) ttl);
        b.put(at + 9, (byte) 17);
        b.putShort(at + 10, (short) 0);
        b.putInt(at + 12, src);
        b.putInt(at + 16, dst);
        int checksum = checksum(b, at, IPV4_HEADER);
        if (!checksumOk) {
            checksum ^= 1 + random.nextInt(0xffff);
        }
        b.putShort(at + 10, (short) checksum);
        int end = at + length;
        int p = at + IPV4_HEADER;
        if (length >= MARKED_LENGTH) {
            b.putShort(p, (short) (1024 + random.nextInt(64512)));
            b.putShort(p + 2, (short) target.capturePort);
            int udpLength = Math.max(8, Math.min(total, length) - IPV4_HEADER);
            b.putShort(p + 4, (short) udpLength);
            b.putShort(p + 6, (short) 0);
            b.putInt(p + 8, MAGIC);
            b.put(p + 12, (byte) c.ordinal());
            b.putLong(p + 13, sequence);
            p += 21;
        }
        for (; p < end; p++) {
            b.put(p, (byte) p);
        }
    }

    private void vxlanHeader(FuzzCase c, ByteBuffer b, int at) {
        int vni = target.vni;
        int flags = VXLAN_FLAGS;
        int reserved = 0;
        int reservedLast = 0;
        byte[] dstMac = target.receiverMac;
        int etherType = ETHERTYPE_IPV4;
        switch (c) {
            case VXLAN_BAD_FLAGS:
                flags = BAD_VXLAN_FLAGS[random.nextInt(BAD_VXLAN_FLAGS.length)];
                break;
            case VXLAN_RESERVED_BITS:
                if (random.nextBoolean()) {
                    reserved = 1 + random.nextInt(0xffffff);
                } else {
                    reservedLast = 1 + random.nextInt(255);
                }
                break;
            case VXLAN_WRONG_VNI:
                vni = (vni + 1 + random.nextInt(0xfffffe)) & 0xffffff;
                break;
            case VXLAN_WRONG_MAC:
                dstMac = wrongMac();
                break;
            case NOT_IPV4:
                etherType = ETHERTYPE_IPV6;
                break;
            case VXLAN_ARP:
                etherType = ETHERTYPE_ARP;
                break;
            default:
                break;
        }
        b.putInt(at, flags << 24 | reserved);
        b.putInt(at + 4, vni << 8 | reservedLast);
        for (int i = 0; i < 6; i++) {
            b.put(at + 8 + i, dstMac[i]);
            b.put(at + 14 + i, target.senderMac[i]);
        }
        b.putShort(at + 20, (short) etherType);
    }

    private byte[] wrongMac() {
        switch (random.nextInt(4)) {
            case 0:
                for (int i = 0; i < 6; i++) {
                    scratchMac[i] = (byte) 0xff;
                }
                return scratchMac;
            case 1:
                return target.senderMac;
            case 2:
                System.arraycopy(target.receiverMac, 0, scratchMac, 0, 6);
                scratchMac[1 + random.nextInt(5)] ^= (byte) (1 << random.nextInt(8));
                return scratchMac;
            default:
                for (int i = 0; i < 6; i++) {
                    scratchMac[i] = (byte) random.nextInt(256);
                }
                scratchMac[0] = (byte) (scratchMac[0] & 0xfe | 0x02);
                if (java.util.Arrays.equals(scratchMac, target.receiverMac)) {
                    scratchMac[5] ^= 1;
                }
                return scratchMac;
        }
    }

    private void runt(ByteBuffer b, int offset, int size) {
        // A valid beginning, cut short: the most plausible runt.
        if (headroom > 0) {
            int vni = target.vni;
            for (int i = 0; i < size; i++) {
                int v;
                if (i == 0) {
                    v = VXLAN_FLAGS;
                } else if (i >= 4 && i < 7) {
                    v = vni >>> (8 * (6 - i));
                } else if (i >= 8 && i < 14) {
                    v = target.receiverMac[i - 8];
                } else if (i >= 14 && i < 20) {
                    v = target.senderMac[i - 14];
                } else if (i == 20) {
                    v = ETHERTYPE_IPV4 >>> 8;
                } else {
                    v = 0;
                }
                b.put(offset + i, (byte) v);
            }
            return;
        }
        for (int i = 0; i < size; i++) {
            b.put(offset + i, (byte) (i == 0 ? 0x45 : random.nextInt(256)));
        }
    }

    private void randomBytes(ByteBuffer b, int offset, int size) {
        int i = 0;
        for (; i + 8 <= size; i += 8) {
            b.putLong(offset + i, random.nextLong());
        }
        for (; i < size; i++) {
            b.put(offset + i, (byte) random.nextInt(256));
        }
    }

    private void ipv6(ByteBuffer b, int at, int length) {
        // version 6, traffic class and flow label, payload length, next header UDP, hop limit, then addresses
        randomBytes(b, at, length);
        b.putInt(at, 0x60000000 | random.nextInt(1 << 20));
        b.putShort(at + 4, (short) Math.max(0, length - 40));
        b.put(at + 6, (byte) 17);
        b.put(at + 7, (byte) 64);
    }

    private void arp(ByteBuffer b, int at, int length) {
        // an ARP request for the receiver's TUN address, from the sender's: must never be answered
        b.putShort(at, (short) 1);
        b.putShort(at + 2, (short) ETHERTYPE_IPV4);
        b.put(at + 4, (byte) 6);
        b.put(at + 5, (byte) 4);
        b.putShort(at + 6, (short) 1);
        for (int i = 0; i < 6; i++) {
            b.put(at + 8 + i, target.senderMac[i]);
            b.put(at + 18 + i, (byte) 0);
        }
        b.putInt(at + 14, target.senderSubnet.networkInt());
        b.putInt(at + 24, target.receiverSubnet.networkInt());
        for (int p = at + 28; p < at + length; p++) {
            b.put(p, (byte) 0);
        }
    }

    /** A host address of a subnet (not its network or broadcast address when the subnet has hosts). */
    private int hostIn(Ipv4Prefix subnet) {
        long size = subnet.size();
        if (size <= 2) {
            return subnet.networkInt() + (int) (size - 1);
        }
        return subnet.networkInt() + 1 + random.nextInt((int) Math.min(size - 2, Integer.MAX_VALUE));
    }

    /** The RFC 1071 checksum of {@code length} bytes at {@code at}. */
    static int checksum(ByteBuffer b, int at, int length) {
        long sum = 0;
        int i = 0;
        for (; i + 1 < length; i += 2) {
            sum += (b.get(at + i) & 0xff) << 8 | b.get(at + i + 1) & 0xff;
        }
        if (i < length) {
            sum += (b.get(at + i) & 0xff) << 8;
        }
        while ((sum >>> 16) != 0) {
            sum = (sum & 0xffff) + (sum >>> 16);
        }
        return (int) ~sum & 0xffff;
    }

    /**
     * The case of a marked datagram as a socket receives it (the UDP payload, from its position), or null if it
     * carries no marker.
     */
    public static FuzzCase markedCase(ByteBuffer udpPayload) {
        int at = udpPayload.position();
        if (udpPayload.limit() - at < 13 || udpPayload.getInt(at) != MAGIC) {
            return null;
        }
        int ordinal = udpPayload.get(at + 4) & 0xff;
        FuzzCase[] all = FuzzCase.values();
        return ordinal < all.length ? all[ordinal] : null;
    }

    /**
     * What the fuzzer knows about the node it attacks: the wire format, the network, the node's own subnet and
     * address, and the lease it may send from.
     */
    public static final class Target {
        final Encapsulation encapsulation;
        final Ipv4Prefix network;
        final Ipv4Prefix receiverSubnet;
        final int receiverAddress;
        final int port;
        final int mtu;
        final int senderAddress;
        final Ipv4Prefix senderSubnet;
        final Ipv4Prefix otherSubnet;
        final int otherHost;
        final Ipv4Prefix unleasedSubnet;
        final int victim;
        final int capturePort;
        final int vni;
        final byte[] receiverMac;
        final byte[] senderMac;

        private Target(Builder b) {
            this.encapsulation = b.encapsulation;
            this.network = b.network;
            this.receiverSubnet = b.receiverSubnet;
            this.receiverAddress = b.receiverAddress;
            this.port = b.port > 0 ? b.port : b.encapsulation.defaultPort();
            this.mtu = b.mtu > 0 ? b.mtu : b.encapsulation == Encapsulation.VXLAN ? 1450 : 1472;
            this.senderAddress = b.senderAddress;
            this.senderSubnet = b.senderSubnet;
            this.otherHost = b.otherHost;
            this.victim = b.victim != 0 ? b.victim : b.receiverSubnet.networkInt() + 2;
            this.capturePort = b.capturePort;
            this.vni = b.vni;
            this.receiverMac = b.receiverMac;
            this.senderMac = b.senderMac;
            List<Ipv4Prefix> taken = new ArrayList<>(List.of(receiverSubnet, senderSubnet));
            this.otherSubnet = b.otherSubnet != null ? b.otherSubnet : free(network, receiverSubnet.length(), taken);
            taken.add(otherSubnet);
            this.unleasedSubnet = b.unleasedSubnet != null ? b.unleasedSubnet
                    : free(network, receiverSubnet.length(), taken);
        }

        /** The last subnet of the network, of this length, that is not taken. */
        private static Ipv4Prefix free(Ipv4Prefix network, int length, List<Ipv4Prefix> taken) {
            long count = 1L << (length - network.length());
            for (long i = count - 1; i >= 0; i--) {
                Ipv4Prefix p = Ipv4Prefix.of(network.networkInt() + (int) (i << (32 - length)), length);
                if (taken.stream().noneMatch(p::overlaps)) {
                    return p;
                }
            }
            throw new IllegalArgumentException("the network " + network + " has no free /" + length);
        }

        /** A builder. */
        public static Builder builder() {
            return new Builder();
        }

        /** The wire format. */
        public Encapsulation encapsulation() {
            return encapsulation;
        }

        /** The node's UDP port. */
        public int port() {
            return port;
        }

        /** The node's underlay address, network order. */
        public int receiverAddress() {
            return receiverAddress;
        }

        /** The leased sender's address, network order. */
        public int senderAddress() {
            return senderAddress;
        }

        /** The node's subnet. */
        public Ipv4Prefix receiverSubnet() {
            return receiverSubnet;
        }

        /** The inner destination of every datagram that must not arrive, network order. */
        public int victim() {
            return victim;
        }

        /** The inner UDP destination port of marked datagrams. */
        public int capturePort() {
            return capturePort;
        }

        /** The node's TUN MTU: the largest inner packet it admits. */
        public int mtu() {
            return mtu;
        }

        @Override
        public String toString() {
            return encapsulation.label() + " node " + Ipv4Prefix.fromInt(receiverAddress).getHostAddress() + ":" + port
                    + " (subnet " + receiverSubnet + " of " + network + ", mtu " + mtu + "), leased sender "
                    + Ipv4Prefix.fromInt(senderAddress).getHostAddress() + " (" + senderSubnet + "), other lease "
                    + otherSubnet + (otherHost == 0 ? "" : " at " + Ipv4Prefix.fromInt(otherHost).getHostAddress())
                    + ", unleased " + unleasedSubnet + ", victim " + Ipv4Prefix.fromInt(victim).getHostAddress() + ":"
                    + capturePort + (encapsulation == Encapsulation.VXLAN ? ", VNI " + vni : "");
        }

        /**
         * Builds a {@link Target}. Required: the network, the node's subnet and address, the leased sender's subnet and
         * address; for VXLAN also both VtepMACs.
         */
        public static final class Builder {
            private Encapsulation encapsulation = Encapsulation.FLANNEL_UDP;
            private Ipv4Prefix network;
            private Ipv4Prefix receiverSubnet;
            private int receiverAddress;
            private int port;
            private int mtu;
            private int senderAddress;
            private Ipv4Prefix senderSubnet;
            private Ipv4Prefix otherSubnet;
            private int otherHost;
            private Ipv4Prefix unleasedSubnet;
            private int victim;
            private int capturePort = 9999;
            private int vni = 1;
            private byte[] receiverMac;
            private byte[] senderMac;

            private Builder() {
            }

            /** The wire format; default flannel udp. */
            public Builder encapsulation(Encapsulation encapsulation) {
                this.encapsulation = requireNonNull(encapsulation, "encapsulation");
                return this;
            }

            /** The overlay network (the config's {@code Network}). Required. */
            public Builder network(Ipv4Prefix network) {
                this.network = requireNonNull(network, "network");
                return this;
            }

            /** The node's own subnet (its lease). Required. */
            public Builder receiverSubnet(Ipv4Prefix subnet) {
                this.receiverSubnet = requireNonNull(subnet, "subnet");
                return this;
            }

            /** The node's underlay address, where datagrams go. Required. */
            public Builder receiverAddress(Inet4Address address) {
                this.receiverAddress = Ipv4Prefix.toInt(requireNonNull(address, "address"));
                return this;
            }

            /** The node's UDP port; default the encapsulation's (8285, 8472). */
            public Builder port(int port) {
                if (port < 1 || port > 65535) {
                    throw new IllegalArgumentException("port must be 1..65535: " + port);
                }
                this.port = port;
                return this;
            }

            /** The node's TUN MTU; default 1472 for udp, 1450 for VXLAN. */
            public Builder mtu(int mtu) {
                if (mtu < MARKED_LENGTH + 1 || mtu > MAX_DATAGRAM - 22 - 1) {
                    throw new IllegalArgumentException("mtu must be " + (MARKED_LENGTH + 1) + ".." + (MAX_DATAGRAM - 23)
                            + ": " + mtu);
                }
                this.mtu = mtu;
                return this;
            }

            /** The public address of a current lease, which the fuzzer's leased socket is bound to. Required. */
            public Builder senderAddress(Inet4Address address) {
                this.senderAddress = Ipv4Prefix.toInt(requireNonNull(address, "address"));
                return this;
            }

            /** The subnet of that lease. Required. */
            public Builder senderSubnet(Ipv4Prefix subnet) {
                this.senderSubnet = requireNonNull(subnet, "subnet");
                return this;
            }

            /**
             * Another leased subnet, for forged sources and destinations in it; default the last free subnet of the
             * network (the verdicts are the same: only the sender's own subnet is admitted as a source).
             */
            public Builder otherSubnet(Ipv4Prefix subnet) {
                this.otherSubnet = requireNonNull(subnet, "subnet");
                return this;
            }

            /** The underlay address of another host (the other lease's), a forged destination; default none. */
            public Builder otherHost(Inet4Address address) {
                this.otherHost = Ipv4Prefix.toInt(requireNonNull(address, "address"));
                return this;
            }

            /** A subnet of the network that no lease holds; default the last free one after the other subnet. */
            public Builder unleasedSubnet(Ipv4Prefix subnet) {
                this.unleasedSubnet = requireNonNull(subnet, "subnet");
                return this;
            }

            /** The inner destination of datagrams that must be dropped: a container; default the subnet's .2. */
            public Builder victim(Inet4Address address) {
                this.victim = Ipv4Prefix.toInt(requireNonNull(address, "address"));
                return this;
            }

            /** The inner UDP destination port of marked datagrams; default 9999. */
            public Builder capturePort(int port) {
                if (port < 1 || port > 65535) {
                    throw new IllegalArgumentException("capture port must be 1..65535: " + port);
                }
                this.capturePort = port;
                return this;
            }

            /** The network's VNI (VXLAN); default 1. */
            public Builder vni(int vni) {
                if (vni < 0 || vni > 0xffffff) {
                    throw new IllegalArgumentException("VNI must be 0..16777215: " + vni);
                }
                this.vni = vni;
                return this;
            }

            /** The node's VtepMAC (VXLAN), colon form. */
            public Builder receiverMac(String mac) {
                this.receiverMac = parseMac(mac);
                return this;
            }

            /** The leased sender's VtepMAC (VXLAN), colon form. */
            public Builder senderMac(String mac) {
                this.senderMac = parseMac(mac);
                return this;
            }

            /**
             * Checks and builds.
             *
             * @throws IllegalArgumentException if something required is missing or the subnets do not fit the network
             */
            public Target build() {
                if (network == null || receiverSubnet == null || receiverAddress == 0 || senderAddress == 0
                        || senderSubnet == null) {
                    throw new IllegalArgumentException("a target needs the network, the node's subnet and address, "
                            + "and the leased sender's subnet and address");
                }
                if (encapsulation == Encapsulation.VXLAN && (receiverMac == null || senderMac == null)) {
                    throw new IllegalArgumentException("a VXLAN target needs the node's and the sender's VtepMAC");
                }
                if (receiverMac == null) {
                    receiverMac = new byte[] {2, 0, 0, 0, 0, 1};
                    senderMac = new byte[] {2, 0, 0, 0, 0, 2};
                }
                for (Ipv4Prefix p : new Ipv4Prefix[] {receiverSubnet, senderSubnet, otherSubnet, unleasedSubnet}) {
                    if (p != null && !network.contains(p)) {
                        throw new IllegalArgumentException(p + " is not in the network " + network);
                    }
                }
                if (receiverSubnet.overlaps(senderSubnet)) {
                    throw new IllegalArgumentException("the sender's subnet " + senderSubnet
                            + " overlaps the node's " + receiverSubnet);
                }
                if (victim != 0 && !receiverSubnet.contains(victim)) {
                    throw new IllegalArgumentException("the victim must be in the node's subnet " + receiverSubnet);
                }
                for (int host : new int[] {receiverAddress, senderAddress, otherHost}) {
                    if (host != 0 && network.contains(host)) {
                        throw new IllegalArgumentException("underlay address "
                                + Ipv4Prefix.fromInt(host).getHostAddress() + " lies in the overlay " + network);
                    }
                }
                return new Target(this);
            }

            private static byte[] parseMac(String mac) {
                String[] parts = requireNonNull(mac, "mac").split(":", -1);
                if (parts.length != 6) {
                    throw new IllegalArgumentException("malformed MAC address: " + mac);
                }
                byte[] b = new byte[6];
                for (int i = 0; i < 6; i++) {
                    try {
                        b[i] = (byte) Integer.parseInt(parts[i], 16);
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("malformed MAC address: " + mac);
                    }
                }
                return b;
            }
        }
    }
}
