package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseEvent;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.TreeMap;

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
 */
public final class PeerTable {
    private static final PeerTable EMPTY = new PeerTable(new TreeMap<>());

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

    private PeerTable(TreeMap<Ipv4Prefix, Peer> bySubnet) {
        this.bySubnet = bySubnet;
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

    /** The table without peers. */
    public static PeerTable empty() {
        return EMPTY;
    }

    /** A builder for a table, initially empty. */
    public static Builder builder() {
        return new Builder(new TreeMap<>());
    }

    /** A table of these leases, all reached at {@code port}. */
    public static PeerTable of(Collection<Lease> leases, int port) {
        Builder b = builder();
        for (Lease lease : leases) {
            b.put(lease, port);
        }
        return b.build();
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

    /** A builder starting from this table's peers (their endpoints are reused, not re-created). */
    public Builder toBuilder() {
        return new Builder(new TreeMap<>(bySubnet));
    }

    /**
     * A new table with {@code events} applied in order: {@link LeaseEvent.Type#ADDED} puts (create or replace),
     * {@link LeaseEvent.Type#REMOVED} removes the subnet (an unknown subnet is ignored). Unchanged peers keep their
     * endpoint objects.
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
        return "PeerTable[" + peers.size() + " peers: " + peers + "]";
    }

    /** Builds a {@link PeerTable}. Not thread-safe; one use per build. */
    public static final class Builder {
        private final TreeMap<Ipv4Prefix, Peer> bySubnet;

        private Builder(TreeMap<Ipv4Prefix, Peer> bySubnet) {
            this.bySubnet = bySubnet;
        }

        /**
         * Adds or replaces the peer for {@code lease.subnet()}. A renewal (same public address and port) keeps the
         * existing endpoint object.
         *
         * @param port the UDP port the peer listens on, 1..65535
         */
        public Builder put(Lease lease, int port) {
            requireNonNull(lease, "lease");
            Peer old = bySubnet.get(lease.subnet());
            Peer peer;
            if (old != null && old.endpoint().getPort() == port
                    && old.endpoint().getAddress().equals(lease.attributes().publicIp())) {
                peer = new Peer(lease.subnet(), old.endpoint(), lease);
            } else {
                peer = Peer.of(lease, port);
            }
            bySubnet.put(lease.subnet(), peer);
            return this;
        }

        /** Removes the peer with exactly this subnet; absent is not an error. */
        public Builder remove(Ipv4Prefix subnet) {
            bySubnet.remove(requireNonNull(subnet, "subnet"));
            return this;
        }

        /** Removes all peers. */
        public Builder clear() {
            bySubnet.clear();
            return this;
        }

        /** The immutable table. */
        public PeerTable build() {
            return new PeerTable(new TreeMap<>(bySubnet));
        }
    }
}
