package io.overlay4j.internal;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * flannel's subnet arithmetic (flannel-facts §2.4–2.6): compatibility with the config and "random among the first
 * 100 free subnets", shared by every {@code SubnetAllocator}.
 */
public final class Subnets {
    /** flannel stops scanning after this many free candidates. */
    public static final int MAX_CANDIDATES = 100;

    private Subnets() {
    }

    /** flannel's isSubnetConfigCompat: within [SubnetMin, SubnetMax] with length SubnetLen (alignment unchecked). */
    public static boolean compatible(NetworkConfig config, Ipv4Prefix subnet) {
        int ip = subnet.networkInt();
        return subnet.length() == config.subnetLen()
                && Integer.compareUnsigned(ip, Ipv4Prefix.toInt(config.subnetMin())) >= 0
                && Integer.compareUnsigned(ip, Ipv4Prefix.toInt(config.subnetMax())) <= 0;
    }

    /** The number of subnets from SubnetMin to SubnetMax. */
    public static long count(NetworkConfig config) {
        long size = 1L << (32 - config.subnetLen());
        long min = Integer.toUnsignedLong(Ipv4Prefix.toInt(config.subnetMin()));
        long max = Integer.toUnsignedLong(Ipv4Prefix.toInt(config.subnetMax()));
        return max >= min ? (max - min) / size + 1 : 0;
    }

    /**
     * A random one of the first 100 free subnets.
     *
     * @throws OverlayException {@code SUBNETS_EXHAUSTED} naming the network and its number of subnets
     */
    public static Ipv4Prefix allocate(NetworkConfig config, Collection<Ipv4Prefix> taken) {
        List<Ipv4Prefix> free = freeCandidates(config, taken);
        if (free.isEmpty()) {
            throw exhausted(config);
        }
        return free.get(ThreadLocalRandom.current().nextInt(free.size()));
    }

    /** The error for a full network. */
    public static OverlayException exhausted(NetworkConfig config) {
        return new OverlayException(Kind.SUBNETS_EXHAUSTED, "network " + config.network() + " has no free /"
                + config.subnetLen() + " subnet (" + count(config) + " subnets from "
                + config.subnetMin().getHostAddress() + " to " + config.subnetMax().getHostAddress()
                + ", all taken)");
    }

    /** The first (up to) 100 subnets from SubnetMin to SubnetMax, ascending, that overlap nothing in {@code taken}. */
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
}
