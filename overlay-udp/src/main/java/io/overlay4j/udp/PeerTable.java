package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseEvent;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An immutable snapshot of the peers of an overlay network, answering "which peer owns this destination?" without
 * locks, boxing or allocation. Changes build a new table (copy-on-write) that the data plane picks up with one
 * volatile read per packet.
 *
 * <p>All subnets of a flannel network share one length, so the prefix length that most entries have is the
 * <em>primary</em> length: those entries live in a primitive open-addressing hash table ({@code int[]} keys, linear
 * probing, power-of-two capacity, load ≤ 0.5, Fibonacci hashing) keyed by {@code dst & mask}; a lookup is one multiply
 * and, in the common case, one probe. Entries of other lengths (reservations) are kept sorted longest first and
 * scanned for the longest prefix match: those longer than the primary length before the hash probe, the shorter ones
 * after it, so the result is always the longest matching prefix.
 *
 * <p>A second primitive table, built with the first, is keyed by the peers' public addresses: it answers the ingress
 * admission questions "does a current lease hold this sender address?" ({@link #senderIndex}) and "does that
 * sender's lease own this inner source?" ({@link #senderOwnsSource}), also without allocation.
 *
 * <p>Each table belongs to one {@link Encapsulator}, which computes every peer's {@linkplain Peer#context() context}
 * when the peer enters. A lease the encapsulator cannot use (e.g. malformed VXLAN backend data) is skipped: logged,
 * kept out of the lookups and listed in {@link #skippedLeases()}; the other peers are unaffected.
 */
public final class PeerTable {
    private static final Logger LOG = LoggerFactory.getLogger(PeerTable.class);
    private static final PeerTable EMPTY = new PeerTable(FlannelUdpEncapsulator.INSTANCE, new TreeMap<>(),
            new TreeMap<>());

    private final int primaryMask;
    private final int hashShift;
    private final int slotMask;
    private final int[] keys;
    private final Peer[] values;
    private final int[] otherNetworks;
    private final int[] otherMasks;
    private final Peer[] otherPeers;
    private final int longerCount;
    private final TreeMap<Ipv4Prefix, Peer> bySubnet;
    private final List<Peer> peers;
    private final Encapsulator encapsulator;
    private final TreeMap<Ipv4Prefix, String> skipped;
    // By public address: open addressing like the subnet table; values are 1 + the index of the first peer with that
    // address in senderNetworks/... (0 = empty slot); further peers with the same address are chained by index.
    private final int senderHashShift;
    private final int senderSlotMask;
    private final int[] senderKeys;
    private final int[] senderFirst;
    private final int[] senderNext;
    private final int[] senderPorts;
    private final int[] senderNetworks;
    private final int[] senderMasks;
    private final Peer[] senderPeers;

    private PeerTable(Encapsulator encapsulator, TreeMap<Ipv4Prefix, Peer> bySubnet,
                      TreeMap<Ipv4Prefix, String> skipped) {
        this.encapsulator = encapsulator;
        this.bySubnet = bySubnet;
        this.skipped = skipped;
        this.peers = Collections.unmodifiableList(new ArrayList<>(bySubnet.values()));
        int primaryLength = primaryLength(bySubnet.keySet());
        int primaryCount = 0;
        for (Ipv4Prefix p : bySubnet.keySet()) {
            if (p.length() == primaryLength) {
                primaryCount++;
            }
        }
        int capacity = 2;
        while (capacity < primaryCount * 2) {
            capacity <<= 1;
        }
        this.primaryMask = Ipv4Prefix.mask(Math.max(primaryLength, 0));
        this.hashShift = 32 - Integer.numberOfTrailingZeros(capacity);
        this.slotMask = capacity - 1;
        this.keys = new int[capacity];
        this.values = new Peer[capacity];
        List<Peer> others = new ArrayList<>();
        for (Peer peer : bySubnet.values()) {
            if (peer.subnet().length() == primaryLength) {
                int key = peer.subnet().networkInt();
                int i = slot(key);
                while (values[i] != null) {
                    i = (i + 1) & slotMask;
                }
                keys[i] = key;
                values[i] = peer;
            } else {
                others.add(peer);
            }
        }
        others.sort((a, b) -> Integer.compare(b.subnet().length(), a.subnet().length()));
        this.otherNetworks = new int[others.size()];
        this.otherMasks = new int[others.size()];
        this.otherPeers = others.toArray(new Peer[0]);
        int longer = 0;
        for (int i = 0; i < otherPeers.length; i++) {
            Ipv4Prefix s = otherPeers[i].subnet();
            otherNetworks[i] = s.networkInt();
            otherMasks[i] = s.maskInt();
            if (s.length() > primaryLength) {
                longer++;
            }
        }
        this.longerCount = longer;

        int n = peers.size();
        int senderCapacity = 2;
        while (senderCapacity < n * 2) {
            senderCapacity <<= 1;
        }
        this.senderHashShift = 32 - Integer.numberOfTrailingZeros(senderCapacity);
        this.senderSlotMask = senderCapacity - 1;
        this.senderKeys = new int[senderCapacity];
        this.senderFirst = new int[senderCapacity];
        this.senderNext = new int[n];
        this.senderPorts = new int[n];
        this.senderNetworks = new int[n];
        this.senderMasks = new int[n];
        this.senderPeers = peers.toArray(new Peer[0]);
        int[] senderLast = new int[senderCapacity];
        for (int p = 0; p < n; p++) {
            Peer peer = peers.get(p);
            senderPorts[p] = peer.port();
            senderNetworks[p] = peer.subnet().networkInt();
            senderMasks[p] = peer.subnet().maskInt();
            int key = peer.address();
            int i = senderSlot(key);
            while (senderFirst[i] != 0 && senderKeys[i] != key) {
                i = (i + 1) & senderSlotMask;
            }
            if (senderFirst[i] == 0) {
                senderKeys[i] = key;
                senderFirst[i] = p + 1;
            } else {
                senderNext[senderLast[i] - 1] = p + 1;
            }
            senderLast[i] = p + 1;
        }
    }

    private int senderSlot(int key) {
        return (key * 0x9E3779B9) >>> senderHashShift;
    }

    /** The most common prefix length, the longer one on a tie; -1 for an empty table. */
    private static int primaryLength(Collection<Ipv4Prefix> subnets) {
        int[] counts = new int[33];
        for (Ipv4Prefix p : subnets) {
            counts[p.length()]++;
        }
        int best = -1;
        for (int len = 32; len >= 0; len--) {
            if (counts[len] > 0 && (best < 0 || counts[len] > counts[best])) {
                best = len;
            }
        }
        return best;
    }

    private int slot(int key) {
        // Fibonacci hashing: the high bits of key × 2^32/φ spread subnet numbers, which differ in the middle bits.
        return (key * 0x9E3779B9) >>> hashShift;
    }

    /** The flannel-udp table without peers. */
    public static PeerTable empty() {
        return EMPTY;
    }

    /** The table without peers for this encapsulation. */
    public static PeerTable empty(Encapsulator encapsulator) {
        return encapsulator == FlannelUdpEncapsulator.INSTANCE ? EMPTY
                : new PeerTable(encapsulator, new TreeMap<>(), new TreeMap<>());
    }

    /** A builder for a flannel-udp table, initially empty. */
    public static Builder builder() {
        return builder(FlannelUdpEncapsulator.INSTANCE);
    }

    /** A builder for a table of peers reached with {@code encapsulator}, initially empty. */
    public static Builder builder(Encapsulator encapsulator) {
        return new Builder(requireNonNull(encapsulator, "encapsulator"), new TreeMap<>(), new TreeMap<>());
    }

    /** A flannel-udp table of these leases, all reached at {@code port}. */
    public static PeerTable of(Collection<Lease> leases, int port) {
        return of(leases, port, FlannelUdpEncapsulator.INSTANCE);
    }

    /** A table of these leases, all reached at {@code port} with {@code encapsulator}; unusable leases skipped. */
    public static PeerTable of(Collection<Lease> leases, int port, Encapsulator encapsulator) {
        Builder b = builder(encapsulator);
        for (Lease lease : leases) {
            b.put(lease, port);
        }
        return b.build();
    }

    /** The encapsulation whose {@linkplain Peer#context() contexts} the peers carry. */
    public Encapsulator encapsulator() {
        return encapsulator;
    }

    /**
     * The leases that were skipped because the encapsulator cannot use them, by subnet, with the reason; unmodifiable.
     * Such a subnet has no peer: traffic to it is answered like traffic to an unleased subnet.
     */
    public Map<Ipv4Prefix, String> skippedLeases() {
        return Collections.unmodifiableMap(skipped);
    }

    /**
     * Ingress admission, step 1: the sender of a datagram, if a current lease holds its address. Lock-free,
     * allocation-free.
     *
     * @param address   the datagram's source address, network order
     * @param port      its source port
     * @param checkPort whether the port must also be the peer's (where the encapsulation fixes source ports)
     * @return a sender index for {@link #senderOwnsSource}, or -1 if no lease holds the address (and port)
     */
    public int senderIndex(int address, int port, boolean checkPort) {
        int[] k = senderKeys;
        int[] first = senderFirst;
        int mask = senderSlotMask;
        for (int i = senderSlot(address); ; i = (i + 1) & mask) {
            int f = first[i];
            if (f == 0) {
                return -1;
            }
            if (k[i] == address) {
                if (checkPort) {
                    for (int p = f; p != 0; p = senderNext[p - 1]) {
                        if (senderPorts[p - 1] == port) {
                            return f - 1;
                        }
                    }
                    return -1;
                }
                return f - 1;
            }
        }
    }

    /**
     * Ingress admission, step 2: whether {@code source} lies in the subnet of a lease held by the sender that
     * {@link #senderIndex} found (a host may hold several leases). Lock-free, allocation-free.
     *
     * @param sender a non-negative result of {@link #senderIndex} on this table
     * @param source the inner packet's source address, network order
     */
    public boolean senderOwnsSource(int sender, int source) {
        return sourcePeer(sender, source) != null;
    }

    /**
     * Ingress admission, step 2, naming the peer: the lease held by the sender that {@link #senderIndex} found whose
     * subnet contains {@code source}, or {@code null}. Lock-free, allocation-free.
     *
     * @param sender a non-negative result of {@link #senderIndex} on this table
     * @param source the inner packet's source address, network order
     */
    public Peer sourcePeer(int sender, int source) {
        for (int p = sender + 1; p != 0; p = senderNext[p - 1]) {
            if ((source & senderMasks[p - 1]) == senderNetworks[p - 1]) {
                return senderPeers[p - 1];
            }
        }
        return null;
    }

    /**
     * The peer whose subnet contains {@code dstAddress} (longest prefix wins), or {@code null}. Lock-free, allocation
     * free, safe from any thread.
     *
     * @param dstAddress an IPv4 address in network order
     */
    public Peer lookup(int dstAddress) {
        for (int i = 0; i < longerCount; i++) {
            if ((dstAddress & otherMasks[i]) == otherNetworks[i]) {
                return otherPeers[i];
            }
        }
        int key = dstAddress & primaryMask;
        int mask = slotMask;
        int[] k = keys;
        Peer[] v = values;
        for (int i = slot(key); ; i = (i + 1) & mask) {
            Peer p = v[i];
            if (p == null) {
                break;
            }
            if (k[i] == key) {
                return p;
            }
        }
        for (int i = longerCount; i < otherPeers.length; i++) {
            if ((dstAddress & otherMasks[i]) == otherNetworks[i]) {
                return otherPeers[i];
            }
        }
        return null;
    }

    /** The peer with exactly this subnet, or {@code null} (not for the data path). */
    public Peer get(Ipv4Prefix subnet) {
        return bySubnet.get(subnet);
    }

    /** The number of peers. */
    public int size() {
        return peers.size();
    }

    /** The peers, ordered by subnet; unmodifiable. */
    public List<Peer> peers() {
        return peers;
    }

    /** A builder starting from this table's peers (their endpoints and contexts are reused, not re-created). */
    public Builder toBuilder() {
        return new Builder(encapsulator, new TreeMap<>(bySubnet), new TreeMap<>(skipped));
    }

    /**
     * A new table with {@code events} applied in order: {@link LeaseEvent.Type#ADDED} puts (create or replace),
     * {@link LeaseEvent.Type#REMOVED} removes the subnet (an unknown subnet is ignored). Unchanged peers keep their
     * endpoint objects and contexts. Leases this table's encapsulator cannot use are skipped.
     *
     * @param port the UDP port of the added peers
     */
    public PeerTable apply(List<LeaseEvent> events, int port) {
        Builder b = toBuilder();
        for (LeaseEvent e : events) {
            if (e.type() == LeaseEvent.Type.ADDED) {
                b.put(e.lease(), port);
            } else {
                b.remove(e.lease().subnet());
            }
        }
        return b.build();
    }

    /** e.g. {@code PeerTable[2 peers: 100.96.2.0/24 -> 10.168.0.3:8285, ...]}. */
    @Override
    public String toString() {
        return "PeerTable[" + peers.size() + " peers: " + peers + (skipped.isEmpty() ? "" : ", skipped " + skipped)
                + "]";
    }

    /** Builds a {@link PeerTable}. Not thread-safe; one use per build. */
    public static final class Builder {
        private final Encapsulator encapsulator;
        private final TreeMap<Ipv4Prefix, Peer> bySubnet;
        private final TreeMap<Ipv4Prefix, String> skipped;
        // The peers of the table this builder started from: a peer put after clear() continues as the same peer.
        private final TreeMap<Ipv4Prefix, Peer> previous;

        private Builder(Encapsulator encapsulator, TreeMap<Ipv4Prefix, Peer> bySubnet,
                        TreeMap<Ipv4Prefix, String> skipped) {
            this.encapsulator = encapsulator;
            this.bySubnet = bySubnet;
            this.skipped = skipped;
            this.previous = new TreeMap<>(bySubnet);
        }

        /**
         * Adds or replaces the peer for {@code lease.subnet()}. A renewal (same public address, port and attributes)
         * keeps the existing endpoint object and context; any replacement keeps the peer's traffic counters. A lease the encapsulator cannot use replaces any peer of
         * that subnet by nothing: it is logged and listed in {@link PeerTable#skippedLeases()}, never thrown.
         *
         * @param port the UDP port the peer listens on, 1..65535
         * @throws IllegalArgumentException only for a port out of range
         */
        public Builder put(Lease lease, int port) {
            requireNonNull(lease, "lease");
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("UDP port must be 1..65535: " + port);
            }
            Peer old = bySubnet.get(lease.subnet());
            if (old == null) {
                old = previous.get(lease.subnet());
            }
            Peer peer;
            if (old != null && old.endpoint().getPort() == port
                    && old.lease().attributes().equals(lease.attributes())) {
                peer = old.successor(old.endpoint(), lease, old.context());
            } else {
                try {
                    peer = Peer.of(lease, port, encapsulator);
                    if (old != null) {
                        peer = old.successor(peer.endpoint(), lease, peer.context());
                    }
                } catch (IllegalArgumentException | NullPointerException e) {
                    String reason = String.valueOf(e.getMessage());
                    if (!reason.equals(skipped.get(lease.subnet()))) {
                        LOG.warn("skipping the lease of {} at {}: {}", lease.subnet(),
                                lease.attributes().publicIp().getHostAddress(), reason);
                    }
                    bySubnet.remove(lease.subnet());
                    previous.remove(lease.subnet());
                    skipped.put(lease.subnet(), reason);
                    return this;
                }
            }
            skipped.remove(lease.subnet());
            bySubnet.put(lease.subnet(), peer);
            return this;
        }

        /** Removes the peer (or skipped lease) with exactly this subnet; absent is not an error. */
        public Builder remove(Ipv4Prefix subnet) {
            bySubnet.remove(requireNonNull(subnet, "subnet"));
            previous.remove(subnet);
            skipped.remove(subnet);
            return this;
        }

        /**
         * Removes all peers and skipped leases. Peers {@linkplain #put put} back afterwards are the same peers again:
         * they keep their endpoint, context and counters (a resync), unless {@linkplain #remove removed} meanwhile.
         */
        public Builder clear() {
            bySubnet.clear();
            skipped.clear();
            return this;
        }

        /** The immutable table. */
        public PeerTable build() {
            return new PeerTable(encapsulator, new TreeMap<>(bySubnet), new TreeMap<>(skipped));
        }
    }
}
