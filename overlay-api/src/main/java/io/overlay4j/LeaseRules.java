package io.overlay4j;

import static java.util.Objects.requireNonNull;

import io.overlay4j.OverlayException.Kind;
import java.net.Inet4Address;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.random.RandomGenerator;

/**
 * flannel's rules for subnets and leases (flannel-facts §2.4–2.7) as pure functions, for every
 * {@link SubnetAllocator}: which subnet a node gets ({@link #plan}), which keys of a store may be routed
 * ({@link #check}), and which keep a subnet from being handed out ({@link #blocks}).
 *
 * <p>What a store may route is stricter than flannel: a lease is used only if its subnet has the configured length and
 * lies in [SubnetMin, SubnetMax] (flannel's own reuse rule), and its PublicIP is a usable unicast address outside the
 * overlay. Anything else (a poisoned {@code <container-ip>-32} or {@code 0.0.0.0-0} key, a value {@code {}} whose
 * PublicIP reads as 0.0.0.0, a reservation of another length) is skipped by the allocators, so it is never routed and
 * never reaches a backend.
 */
public final class LeaseRules {
    /** flannel stops scanning after this many free candidates and picks one of them at random. */
    public static final int MAX_CANDIDATES = 100;

    private LeaseRules() {
    }

    /**
     * flannel's {@code isSubnetConfigCompat}: the subnet has length SubnetLen and its address lies in
     * [SubnetMin, SubnetMax]. ({@link Ipv4Prefix} keeps no host bits, so it is also aligned.)
     */
    public static boolean fits(NetworkConfig config, Ipv4Prefix subnet) {
        int ip = subnet.networkInt();
        return subnet.length() == config.subnetLen()
                && Integer.compareUnsigned(ip, Ipv4Prefix.toInt(config.subnetMin())) >= 0
                && Integer.compareUnsigned(ip, Ipv4Prefix.toInt(config.subnetMax())) <= 0;
    }

    /**
     * Whether a host can send encapsulated traffic to {@code address}: not in 0.0.0.0/8, loopback (127.0.0.0/8),
     * multicast (224.0.0.0/4) or reserved and broadcast (240.0.0.0/4). Link-local addresses are allowed (an underlay
     * may use them).
     */
    public static boolean isUsablePublicIp(Inet4Address address) {
        int top = (Ipv4Prefix.toInt(address) >>> 24) & 0xff;
        return top != 0 && top != 127 && top < 224;
    }

    /**
     * Why a lease read from the store must not be routed, or empty if it may be: its subnet must {@link #fits fit} the
     * config and its PublicIP must be {@link #isUsablePublicIp usable} and outside the overlay network (an address
     * inside it would send the encapsulated datagram back into the overlay).
     */
    public static Optional<String> check(NetworkConfig config, Lease lease) {
        requireNonNull(config, "config");
        Ipv4Prefix s = lease.subnet();
        if (!fits(config, s)) {
            return Optional.of("subnet " + s + " does not fit the network config (/" + config.subnetLen() + " from "
                    + config.subnetMin().getHostAddress() + " to " + config.subnetMax().getHostAddress() + ")");
        }
        Inet4Address ip = lease.attributes().publicIp();
        if (!isUsablePublicIp(ip)) {
            return Optional.of("PublicIP " + ip.getHostAddress() + " of " + s + " is not a usable unicast address");
        }
        if (config.network().contains(ip)) {
            return Optional.of("PublicIP " + ip.getHostAddress() + " of " + s + " lies inside the overlay network "
                    + config.network());
        }
        return Optional.empty();
    }

    /**
     * Whether a key in the store keeps the subnets it overlaps from being handed out: it does if it lies inside the
     * overlay network and is smaller than it. flannel honours every key, so a key like {@code 0.0.0.0-0} or the
     * network itself would make the whole network look full; such keys (which flannel never writes and overlay4j never
     * routes) are ignored. Reservations of other lengths inside the network, and keys whose value cannot be read,
     * do block.
     */
    public static boolean blocks(NetworkConfig config, Ipv4Prefix key) {
        Ipv4Prefix network = config.network();
        return key.length() > network.length() && network.contains(key);
    }

    /** The number of subnets from SubnetMin to SubnetMax. */
    public static long count(NetworkConfig config) {
        long size = 1L << (32 - config.subnetLen());
        long min = Integer.toUnsignedLong(Ipv4Prefix.toInt(config.subnetMin()));
        long max = Integer.toUnsignedLong(Ipv4Prefix.toInt(config.subnetMax()));
        return max >= min ? (max - min) / size + 1 : 0;
    }

    /** The error for a full network: {@code SUBNETS_EXHAUSTED}, naming the network and its number of subnets. */
    public static OverlayException exhausted(NetworkConfig config) {
        return new OverlayException(Kind.SUBNETS_EXHAUSTED, "network " + config.network() + " has no free /"
                + config.subnetLen() + " subnet (" + count(config) + " subnets from "
                + config.subnetMin().getHostAddress() + " to " + config.subnetMax().getHostAddress()
                + ", all taken)");
    }

    /**
     * The first (up to) {@value #MAX_CANDIDATES} subnets from SubnetMin to SubnetMax, ascending, that overlap no
     * subnet in {@code taken} (overlap compared under the shorter mask, as flannel does).
     */
    public static List<Ipv4Prefix> freeCandidates(NetworkConfig config, Collection<Ipv4Prefix> taken) {
        int len = config.subnetLen();
        long size = 1L << (32 - len);
        long min = Integer.toUnsignedLong(Ipv4Prefix.toInt(config.subnetMin()));
        long max = Integer.toUnsignedLong(Ipv4Prefix.toInt(config.subnetMax()));
        // Taken ranges merged into disjoint [start, end] intervals, so each candidate is one floor lookup.
        List<long[]> ranges = new ArrayList<>();
        for (Ipv4Prefix p : taken) {
            long start = Integer.toUnsignedLong(p.networkInt());
            ranges.add(new long[] {start, start + p.size() - 1});
        }
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        TreeMap<Long, Long> merged = new TreeMap<>();
        for (long[] r : ranges) {
            Map.Entry<Long, Long> last = merged.lastEntry();
            if (last != null && r[0] <= last.getValue() + 1) {
                merged.put(last.getKey(), Math.max(last.getValue(), r[1]));
            } else {
                merged.put(r[0], r[1]);
            }
        }
        List<Ipv4Prefix> free = new ArrayList<>();
        long ip = min;
        while (ip <= max && free.size() < MAX_CANDIDATES) {
            Map.Entry<Long, Long> t = merged.floorEntry(ip + size - 1);
            if (t != null && t.getValue() >= ip) {
                long next = t.getValue() + 1; // the first candidate after the taken range
                ip = min + ((next - min + size - 1) / size) * size;
                continue;
            }
            free.add(Ipv4Prefix.of((int) ip, len));
            ip += size;
        }
        return free;
    }

    /** As {@link #plan(NetworkConfig, List, Inet4Address, Ipv4Prefix, RandomGenerator)} with a thread-local random. */
    public static Plan plan(NetworkConfig config, List<Entry> entries, Inet4Address publicIp, Ipv4Prefix preferred) {
        return plan(config, entries, publicIp, preferred, ThreadLocalRandom.current());
    }

    /**
     * flannel's acquisition rules (flannel-facts §2.4–2.5), without side effects: what a node with {@code publicIp}
     * should do given the store's current keys.
     * <ol>
     *   <li>Reuse by PublicIP: the first entry (in the given order) holding {@code publicIp} whose subnet
     *       {@link #fits} is reused ({@link Plan.Action#REUSE}: rewrite it with the node's attributes; a reservation
     *       stays one). Entries of {@code publicIp} that do not fit are deleted first, except reservations.</li>
     *   <li>The preferred (previous) subnet, if it fits and overlaps no {@link #blocks blocking} entry
     *       ({@link Plan.Action#PREVIOUS}).</li>
     *   <li>Else one of the first {@value #MAX_CANDIDATES} free subnets at random ({@link Plan.Action#RANDOM}), or
     *       {@link Plan.Action#EXHAUSTED}.</li>
     * </ol>
     *
     * @param entries   every key of the network's store, unexpired, in key order
     * @param publicIp  the acquiring node's PublicIP
     * @param preferred the subnet it held before (its subnet file), or {@code null}
     * @param random    picks among the free candidates
     */
    public static Plan plan(NetworkConfig config, List<Entry> entries, Inet4Address publicIp, Ipv4Prefix preferred,
                            RandomGenerator random) {
        requireNonNull(config, "config");
        requireNonNull(entries, "entries");
        requireNonNull(publicIp, "publicIp");
        requireNonNull(random, "random");
        String ip = publicIp.getHostAddress();
        List<String> notes = new ArrayList<>();
        List<Entry> delete = new ArrayList<>();
        for (Entry e : entries) {
            if (e.attributes() == null || !e.attributes().publicIp().equals(publicIp)) {
                continue;
            }
            if (fits(config, e.subnet())) {
                notes.add("reusing lease " + e.subnet() + " of " + ip);
                return new Plan(Plan.Action.REUSE, e.subnet(), e, delete, notes);
            }
            if (e.reservation()) {
                notes.add("reservation " + e.subnet() + " for " + ip + " does not fit the network config, leaving it"
                        + " alone");
            } else {
                notes.add("found lease " + e.subnet() + " for " + ip + ", but not compatible with the network config,"
                        + " deleting it");
                delete.add(e);
            }
        }
        List<Ipv4Prefix> taken = new ArrayList<>();
        for (Entry e : entries) {
            if (!delete.contains(e) && blocks(config, e.subnet())) {
                taken.add(e.subnet());
            }
        }
        if (preferred != null) {
            if (!fits(config, preferred)) {
                notes.add("previous subnet " + preferred + " is not compatible with the network config, ignoring");
            } else if (taken.stream().noneMatch(t -> t.overlaps(preferred))) {
                notes.add("reusing previous subnet " + preferred);
                return new Plan(Plan.Action.PREVIOUS, preferred, null, delete, notes);
            } else {
                notes.add("previous subnet " + preferred + " is taken, allocating another");
            }
        }
        List<Ipv4Prefix> free = freeCandidates(config, taken);
        if (free.isEmpty()) {
            return new Plan(Plan.Action.EXHAUSTED, null, null, delete, notes);
        }
        return new Plan(Plan.Action.RANDOM, free.get(random.nextInt(free.size())), null, delete, notes);
    }

    /**
     * One key of a store as {@link #plan} sees it.
     *
     * @param subnet      the key's subnet
     * @param attributes  its value, or {@code null} if it cannot be read (or belongs to no node that may reuse it)
     * @param reservation whether it is a reservation (a key without expiry), which is never deleted
     */
    public record Entry(Ipv4Prefix subnet, LeaseAttributes attributes, boolean reservation) {
        public Entry {
            requireNonNull(subnet, "subnet");
        }

        /** The entry of a readable lease. */
        public static Entry of(Lease lease) {
            return new Entry(lease.subnet(), lease.attributes(), lease.isReservation());
        }
    }

    /**
     * What a node should do to acquire a lease: first delete {@link #delete()} (each only if unchanged since it was
     * read), then act on {@link #action()}. {@link #notes()} say why, for the log.
     *
     * @param action what to do
     * @param subnet the subnet to reuse or create; {@code null} for {@link Action#EXHAUSTED}
     * @param reuse  the entry to rewrite for {@link Action#REUSE}, else {@code null}
     * @param delete entries of the node's PublicIP that no longer fit the config
     * @param notes  one line per decision taken, in order
     */
    public record Plan(Action action, Ipv4Prefix subnet, Entry reuse, List<Entry> delete, List<String> notes) {
        public Plan {
            requireNonNull(action, "action");
            delete = List.copyOf(delete);
            notes = List.copyOf(notes);
        }

        /** The outcome of {@link LeaseRules#plan}. */
        public enum Action {
            /** Rewrite the node's existing lease ({@link Plan#reuse()}) with its attributes. */
            REUSE,
            /** Create the preferred (previous) subnet. */
            PREVIOUS,
            /** Create a subnet picked at random among the first free ones. */
            RANDOM,
            /** No subnet is free. */
            EXHAUSTED
        }
    }
}
