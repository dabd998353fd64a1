package io.overlay4j.etcd;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseRules;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import java.time.Instant;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * flannel's etcd keys and values (flannel-facts §2.1–2.2) under one prefix: {@code <prefix>/subnets/10.5.34.0-24}
 * holding {@code {"PublicIP":"10.168.0.2","PublicIPv6":null}}. Decoding never throws: a key that is not a subnet key,
 * a value that cannot be read, and a lease that must not be routed ({@link LeaseRules#check}) are each counted and
 * logged once per key and value, and skipped by whoever asked.
 */
final class LeaseCodec {
    private static final Logger log = LoggerFactory.getLogger(EtcdSubnetAllocator.class);
    private static final int WARNED_MAX = 10_000;

    private final String subnetsPrefix;
    private final String where;
    private final AtomicLong skipped = new AtomicLong();
    private final Set<String> warned = ConcurrentHashMap.newKeySet();

    /**
     * @param prefix the key prefix without a trailing slash, e.g. {@code /coreos.com/network}
     * @param where  names the store in log lines, e.g. {@code etcd at http://10.0.0.1:2379}
     */
    LeaseCodec(String prefix, String where) {
        this.subnetsPrefix = prefix + "/subnets";
        this.where = where;
    }

    /** {@code <prefix>/subnets}, the prefix every lease key starts with (no trailing slash, as flannel lists it). */
    String subnetsPrefix() {
        return subnetsPrefix;
    }

    /** The key of a subnet: {@code <prefix>/subnets/a.b.c.d-len}. */
    String keyOf(Ipv4Prefix subnet) {
        return subnetsPrefix + "/" + subnet.toSubnetKey();
    }

    /** How many distinct keys and values were skipped (unparsable, or not fit to route) since this codec was made. */
    long skipped() {
        return skipped.get();
    }

    /**
     * Decodes one key and value; {@code null} (counted and logged once) if the key is not a subnet key under the
     * prefix. A value that cannot be read gives an entry without attributes, so its subnet still counts as taken.
     *
     * @param leaseId    the etcd lease the key is attached to, 0 for none (a reservation)
     * @param expiration when that etcd lease ends, {@code null} if unknown or for a reservation
     */
    Entry decode(String key, String value, long leaseId, long modRevision, Instant expiration) {
        Ipv4Prefix subnet;
        boolean canonical;
        String name = key.startsWith(subnetsPrefix + "/") ? key.substring(subnetsPrefix.length() + 1) : null;
        try {
            if (name == null || name.indexOf('/') >= 0) {
                throw new IllegalArgumentException("not under " + subnetsPrefix + "/");
            }
            int amp = name.indexOf('&'); // dual stack: "10.5.34.0-24&fc00:0:0:1::-64", the IPv4 part is what we need
            subnet = Ipv4Prefix.fromSubnetKey(amp < 0 ? name : name.substring(0, amp));
            canonical = amp < 0 && subnet.toSubnetKey().equals(name);
        } catch (IllegalArgumentException e) {
            skip(key, value, e.getMessage());
            return null;
        }
        LeaseAttributes attributes = null;
        try {
            attributes = LeaseAttributes.parse(value);
        } catch (OverlayException e) {
            skip(key, value, e.getMessage());
        }
        return new Entry(key, subnet, canonical, attributes, value, leaseId, modRevision, expiration);
    }

    /**
     * The entry's lease if it may be routed: readable, a canonical IPv4 key, and passing {@link LeaseRules#check};
     * otherwise empty, counted and logged once.
     */
    Optional<Lease> routable(NetworkConfig config, Entry e) {
        if (e.attributes() == null) {
            return Optional.empty(); // counted when decoded
        }
        if (!e.canonical()) {
            skip(e.key(), e.raw(), "not an IPv4-only subnet key in canonical form");
            return Optional.empty();
        }
        Lease lease = e.lease();
        Optional<String> problem = LeaseRules.check(config, lease);
        if (problem.isPresent()) {
            skip(e.key(), e.raw(), problem.get());
            return Optional.empty();
        }
        return Optional.of(lease);
    }

    private void skip(String key, String value, String why) {
        if (warned.size() >= WARNED_MAX) {
            warned.clear(); // bounded: a flood of distinct bad keys is logged again rather than kept forever
        }
        if (warned.add(key + "=" + value)) {
            skipped.incrementAndGet();
            log.warn("skipping {} in {}: {}", key, where, why);
        }
    }

    /**
     * One key as read from etcd.
     *
     * @param key         the full key
     * @param subnet      the (IPv4) subnet it names
     * @param canonical   whether the key is exactly flannel's IPv4-only form (dual-stack keys are not)
     * @param attributes  the parsed value, or {@code null} if it cannot be read
     * @param raw         the value as stored
     * @param leaseId     the etcd lease it is attached to, 0 for none
     * @param modRevision the revision of its last change
     * @param expiration  when its etcd lease ends, {@code null} if unknown or none
     */
    record Entry(String key, Ipv4Prefix subnet, boolean canonical, LeaseAttributes attributes, String raw,
                 long leaseId, long modRevision, Instant expiration) {

        /** A key without an etcd lease: a reservation (flannel-facts §2.7). */
        boolean isReservation() {
            return leaseId == 0;
        }

        /** The entry as a {@link Lease}; only for entries with attributes. */
        Lease lease() {
            return new Lease(subnet, attributes, isReservation() ? null : expiration);
        }

        /** The entry as {@link LeaseRules#plan} sees it; a non-canonical key is taken but reusable by no one. */
        LeaseRules.Entry planEntry() {
            return new LeaseRules.Entry(subnet, canonical ? attributes : null, isReservation());
        }
    }
}
