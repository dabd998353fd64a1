package io.overlay4j.etcd;

import static com.google.common.base.Preconditions.checkArgument;
import static java.util.Objects.requireNonNull;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.ClientBuilder;
import io.etcd.jetcd.KV;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.common.exception.CompactedException;
import io.etcd.jetcd.kv.GetResponse;
import io.etcd.jetcd.kv.TxnResponse;
import io.etcd.jetcd.lease.LeaseGrantResponse;
import io.etcd.jetcd.lease.LeaseTimeToLiveResponse;
import io.etcd.jetcd.op.Cmp;
import io.etcd.jetcd.op.CmpTarget;
import io.etcd.jetcd.op.Op;
import io.etcd.jetcd.options.DeleteOption;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.LeaseOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchEvent;
import io.etcd.jetcd.watch.WatchResponse;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.LeaseRules;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link SubnetAllocator} on etcd v3 that shares its storage with upstream flanneld (flannel-facts §2): the config at
 * {@code <prefix>/config}, one key per lease at {@code <prefix>/subnets/<a.b.c.d-len>} holding flannel's lease JSON
 * byte for byte, attached to an etcd lease granted with the lease TTL (24 h by default). overlay4j nodes and flanneld
 * nodes can therefore share one network.
 *
 * <p>Unlike flanneld (flannel-facts Appendix A), this allocator
 * <ul>
 *   <li>retries a lost create race (re-lists and picks again, up to 20 times with a small jittered backoff);</li>
 *   <li>keeps reservations (keys without an etcd lease) as reservations: they count as taken, go only to their
 *       PublicIP, are rewritten without a lease and never deleted;</li>
 *   <li>skips a key or value it cannot parse (logged, counted in {@link #corruptValues()}) without failing a listing
 *       or withdrawing other leases from a watch;</li>
 *   <li>after a compaction re-lists and delivers a fresh {@link LeaseListener#onSnapshot}, so attribute changes made
 *       during the gap are not lost.</li>
 * </ul>
 *
 * <p>Expirations are {@code now + the TTL etcd reports} (whole seconds), so two processes agree on a lease's
 * expiration to within about a second; allocators in one JVM share what they learnt and report identical instants.
 *
 * <p>Every etcd failure is an {@link OverlayException} of kind {@code STORE_UNAVAILABLE} with the message
 * {@code etcd at <endpoints>: <cause>} and the cause chained; every call is bounded by the request timeout.
 *
 * <pre>{@code
 * try (EtcdSubnetAllocator alloc = EtcdSubnetAllocator.builder()
 *         .endpoints("http://10.0.0.1:2379")
 *         .build()) {
 *     Lease lease = alloc.acquire(LeaseAttributes.udp(publicIp), previousSubnet);
 * }
 * }</pre>
 */
public final class EtcdSubnetAllocator implements SubnetAllocator {
    private static final Logger log = LoggerFactory.getLogger(EtcdSubnetAllocator.class);

    /** flannel's message when the config key is missing (flannel-facts §1.1). */
    static final String CONFIG_NOT_FOUND_MESSAGE =
            "flannel config not found in etcd store. Did you create your config using etcdv3 API?";
    static final int RACE_RETRIES = 20;
    private static final long BACKOFF_MIN_MS = 100;
    private static final long BACKOFF_MAX_MS = 5000;

    /**
     * Expirations learnt from grants and TTL reads, keyed by cluster id and etcd lease id, shared by the allocators of
     * this JVM so they all report the same instant for one lease. Entries are replaced when etcd's TTL disagrees by
     * more than {@link #EXPIRY_SLACK}, and dropped once expired.
     */
    private static final Map<String, Instant> EXPIRATIONS = new ConcurrentHashMap<>();
    private static final Duration EXPIRY_SLACK = Duration.ofSeconds(2);
    private static final int EXPIRATIONS_PRUNE_AT = 4096;
    private static final AtomicInteger WATCH_IDS = new AtomicInteger();

    private final Client client;
    private final KV kv;
    private final io.etcd.jetcd.Lease leases;
    private final String endpoints;
    private final String prefix;
    private final ByteSequence configKey;
    private final String subnetsPrefix;
    private final Duration leaseTtl;
    private final Duration requestTimeout;
    private final Clock clock;
    private final AtomicLong corruptValues = new AtomicLong();
    private final AtomicLong lostRaces = new AtomicLong();
    private final Set<String> warned = ConcurrentHashMap.newKeySet();
    private final List<EtcdWatch> watches = new CopyOnWriteArrayList<>();
    private volatile boolean closed;

    private EtcdSubnetAllocator(Builder b, Client client) {
        this.client = client;
        this.kv = client.getKVClient();
        this.leases = client.getLeaseClient();
        this.endpoints = String.join(",", b.endpoints);
        this.prefix = b.prefix;
        this.configKey = bytes(prefix + "/config");
        this.subnetsPrefix = prefix + "/subnets";
        this.leaseTtl = b.leaseTtl;
        this.requestTimeout = b.requestTimeout;
        this.clock = b.clock;
    }

    /** A builder with flannel's defaults: {@code http://127.0.0.1:2379}, prefix {@code /coreos.com/network}, 24 h. */
    public static Builder builder() {
        return new Builder();
    }

    /** The key prefix, without a trailing slash, e.g. {@code /coreos.com/network}. */
    public String prefix() {
        return prefix;
    }

    /** The etcd endpoints, comma-separated. */
    public String endpoints() {
        return endpoints;
    }

    /**
     * How many times a subnet key or lease value could not be parsed since this allocator was built. Every listing
     * and watch event that meets one counts, so the number grows while a bad key stays in etcd.
     */
    public long corruptValues() {
        return corruptValues.get();
    }

    /** How many acquisition attempts lost a race and were retried (for tests and diagnostics). */
    long lostRaces() {
        return lostRaces.get();
    }

    /**
     * Reads {@code <prefix>/config} (again on every call, as flannel does).
     *
     * @throws OverlayException {@code CONFIG_NOT_FOUND} with flannel's message if the key is missing,
     *                          {@code CONFIG_INVALID} if it does not parse or validate, {@code STORE_UNAVAILABLE}
     */
    @Override
    public NetworkConfig networkConfig() {
        ensureOpen();
        GetResponse r = call(kv.get(configKey), "get " + prefix + "/config");
        if (r.getKvs().isEmpty()) {
            throw new OverlayException(Kind.CONFIG_NOT_FOUND, CONFIG_NOT_FOUND_MESSAGE);
        }
        return NetworkConfig.parse(r.getKvs().get(0).getValue().toString(StandardCharsets.UTF_8));
    }

    /**
     * {@inheritDoc}
     *
     * <p>As flannel (flannel-facts §2.4–2.5): the first key holding our PublicIP is reused if it fits the config (its
     * value rewritten with {@code attributes} and a fresh etcd lease; a reservation stays without one); one that does
     * not fit is deleted unless it is a reservation. Then {@code previousSubnet} if it overlaps no key and fits; else a
     * random one of the first 100 free subnets. A lost create race re-lists and tries again, up to 20 times.
     *
     * @throws OverlayException {@code SUBNETS_EXHAUSTED} naming the network and its number of subnets,
     *                          {@code LEASE_CONFLICT} if every attempt lost a race, {@code STORE_UNAVAILABLE}
     */
    @Override
    public Lease acquire(LeaseAttributes attributes, Ipv4Prefix previousSubnet) {
        requireNonNull(attributes, "attributes");
        ensureOpen();
        String ip = attributes.publicIp().getHostAddress();
        for (int attempt = 1; attempt <= RACE_RETRIES; attempt++) {
            NetworkConfig config = networkConfig();
            Listing listing = list();
            Lease lease = tryAcquire(config, listing, attributes, previousSubnet);
            if (lease != null) {
                return lease;
            }
            lostRaces.incrementAndGet();
            log.debug("lost a race acquiring a subnet for {} (attempt {}), trying again", ip, attempt);
            sleepJittered(attempt);
        }
        throw new OverlayException(Kind.LEASE_CONFLICT, "could not acquire a subnet for " + ip + " in " + prefix
                + ": lost the race to other nodes " + RACE_RETRIES + " times");
    }

    /** One attempt; {@code null} if a concurrent change made it fail (so the caller re-lists). */
    private Lease tryAcquire(NetworkConfig config, Listing listing, LeaseAttributes attributes, Ipv4Prefix previous) {
        String ip = attributes.publicIp().getHostAddress();
        for (Entry e : listing.entries) {
            if (e.attributes == null || !e.attributes.publicIp().equals(attributes.publicIp())) {
                continue;
            }
            if (!e.canonical) {
                log.warn("{} holds {} but is not an IPv4-only subnet key; leaving it alone", e.key, ip);
                continue;
            }
            if (LeaseRules.fits(config, e.subnet)) {
                Lease lease = rewrite(e, attributes);
                if (lease != null) {
                    log.info("reusing lease {} of {}", e.subnet, ip);
                }
                return lease;
            }
            if (e.isReservation()) {
                log.warn("reservation {} for {} does not fit the network config {}, leaving it alone",
                        e.subnet, ip, config);
                continue;
            }
            log.info("found lease {} for {}, but not compatible with the network config, deleting it",
                    e.subnet, ip);
            if (!deleteIfUnchanged(e)) {
                return null;
            }
        }
        List<Ipv4Prefix> taken = new ArrayList<>();
        for (Entry e : listing.entries) {
            if (!(e.attributes != null && e.attributes.publicIp().equals(attributes.publicIp())
                    && e.canonical && !e.isReservation() && !LeaseRules.fits(config, e.subnet))) {
                taken.add(e.subnet); // the incompatible leases of our own IP were just deleted
            }
        }
        Ipv4Prefix subnet = null;
        if (previous != null) {
            if (!LeaseRules.fits(config, previous)) {
                log.info("previous subnet {} is not compatible with the network config, ignoring", previous);
            } else if (taken.stream().noneMatch(t -> t.overlaps(previous))) {
                subnet = previous;
            } else {
                log.info("previous subnet {} is taken, allocating another", previous);
            }
        }
        if (subnet == null) {
            List<Ipv4Prefix> free = LeaseRules.freeCandidates(config, taken);
            if (free.isEmpty()) {
                throw LeaseRules.exhausted(config);
            }
            subnet = free.get(ThreadLocalRandom.current().nextInt(free.size()));
        }
        Lease lease = create(subnet, attributes);
        if (lease != null) {
            log.info("acquired subnet {} for {}", subnet, ip);
        }
        return lease;
    }

    /**
     * {@inheritDoc}
     *
     * <p>A lease is rewritten with a fresh etcd lease (a reservation without one). If the key is gone and the subnet is
     * still free and fits the config, it is created again, as flannel's unconditional renewal {@code Put} would.
     *
     * @throws OverlayException {@code LEASE_LOST} if another PublicIP holds the subnet (or it is gone and taken or no
     *                          longer fits), {@code STORE_UNAVAILABLE}
     */
    @Override
    public Lease renew(Lease lease) {
        requireNonNull(lease, "lease");
        ensureOpen();
        String key = keyOf(lease.subnet());
        for (int attempt = 1; attempt <= RACE_RETRIES; attempt++) {
            GetResponse r = call(kv.get(bytes(key)), "get " + key);
            if (r.getKvs().isEmpty()) {
                NetworkConfig config = networkConfig();
                Listing listing = list();
                boolean free = listing.entries.stream().noneMatch(o -> o.subnet.overlaps(lease.subnet()));
                if (!free || !LeaseRules.fits(config, lease.subnet())) {
                    throw new OverlayException(Kind.LEASE_LOST, "lease " + lease.subnet() + " is gone and the subnet "
                            + (free ? "no longer fits the network config" : "overlaps another lease"));
                }
                log.warn("lease {} had expired or was deleted; creating it again", lease.subnet());
                Lease created = create(lease.subnet(), lease.attributes());
                if (created != null) {
                    return created;
                }
            } else {
                Entry e = entry(r.getKvs().get(0), r.getHeader().getClusterId(), null);
                if (e.attributes == null) {
                    throw new OverlayException(Kind.LEASE_LOST, "lease " + lease.subnet() + " in etcd at " + endpoints
                            + " is unreadable: " + e.raw);
                }
                if (!e.attributes.publicIp().equals(lease.attributes().publicIp())) {
                    throw new OverlayException(Kind.LEASE_LOST, "subnet " + lease.subnet() + " is now held by "
                            + e.attributes.publicIp().getHostAddress());
                }
                Lease renewed = rewrite(e, lease.attributes());
                if (renewed != null) {
                    return renewed;
                }
            }
            sleepJittered(attempt);
        }
        throw new OverlayException(Kind.LEASE_CONFLICT, "could not renew " + lease.subnet()
                + ": it kept changing under us");
    }

    /** {@inheritDoc} Deletes the key only while it still holds our PublicIP, unchanged, with an etcd lease. */
    @Override
    public void release(Lease lease) {
        requireNonNull(lease, "lease");
        ensureOpen();
        String key = keyOf(lease.subnet());
        GetResponse r = call(kv.get(bytes(key)), "get " + key);
        if (r.getKvs().isEmpty()) {
            return;
        }
        KeyValue kvp = r.getKvs().get(0);
        Entry e = entry(kvp, r.getHeader().getClusterId(), null);
        if (e.attributes == null || e.isReservation()
                || !e.attributes.publicIp().equals(lease.attributes().publicIp())) {
            return;
        }
        if (deleteIfUnchanged(e)) {
            log.info("released lease {}", lease.subnet());
        } else {
            log.info("lease {} changed while releasing it; left alone", lease.subnet());
        }
    }

    /** {@inheritDoc} Unparsable keys and values are skipped (see {@link #corruptValues()}). */
    @Override
    public List<Lease> leases() {
        ensureOpen();
        return visible(list().entries, now());
    }

    /**
     * {@inheritDoc}
     *
     * <p>One etcd watch on {@code <prefix>/subnets} from the snapshot's revision + 1. After an error it resumes from
     * the last revision seen + 1, backing off from 100 ms to 5 s and reporting each failure to
     * {@link LeaseListener#onError}. If etcd has compacted past that revision, the watch re-lists and delivers a new
     * {@link LeaseListener#onSnapshot} (which also carries attribute changes made meanwhile). A PUT whose key or value
     * cannot be parsed is logged and counted, and changes nothing the listener knows. Each watch has its own thread.
     */
    @Override
    public Watch watch(LeaseListener listener) {
        requireNonNull(listener, "listener");
        ensureOpen();
        EtcdWatch w = new EtcdWatch(listener);
        watches.add(w);
        if (closed) {
            w.close();
        } else {
            w.start();
        }
        return w;
    }

    /** Closes all watches and the etcd client. Idempotent. Leases stay in etcd until they expire. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (EtcdWatch w : watches) {
            w.close();
        }
        client.close();
    }

    // ---- etcd operations ----

    /** Grant + {@code If(version(key) == 0) Then(put(key, json, lease))}; {@code null} if the key exists. */
    private Lease create(Ipv4Prefix subnet, LeaseAttributes attributes) {
        String key = keyOf(subnet);
        Instant before = now();
        LeaseGrantResponse grant = call(leases.grant(leaseTtl.toSeconds()), "grant a lease for " + key);
        // Known before the put, so a watch that sees the put at once reports this very instant.
        Instant expiration = millis(before.plusSeconds(grant.getTTL()));
        String ck = cacheKey(grant.getHeader().getClusterId(), grant.getID());
        EXPIRATIONS.put(ck, expiration);
        boolean ok = false;
        try {
            TxnResponse t = call(kv.txn()
                    .If(new Cmp(bytes(key), Cmp.Op.EQUAL, CmpTarget.version(0)))
                    .Then(Op.put(bytes(key), bytes(attributes.toJson()),
                            PutOption.builder().withLeaseId(grant.getID()).build()))
                    .commit(), "create " + key);
            ok = t.isSucceeded();
        } finally {
            if (!ok) {
                EXPIRATIONS.remove(ck);
                revokeQuietly(grant.getID());
            }
        }
        if (!ok) {
            return null;
        }
        return new Lease(subnet, attributes, expiration);
    }

    /**
     * Writes {@code attributes} to an existing key if it is unchanged since it was listed: with a fresh etcd lease, or
     * without one for a reservation. The old etcd lease is revoked (flannel lets it run out, holding nothing).
     * {@code null} if the key changed meanwhile.
     */
    private Lease rewrite(Entry e, LeaseAttributes attributes) {
        Cmp unchanged = new Cmp(bytes(e.key), Cmp.Op.EQUAL, CmpTarget.modRevision(e.modRevision));
        if (e.isReservation()) {
            TxnResponse t = call(kv.txn().If(unchanged)
                    .Then(Op.put(bytes(e.key), bytes(attributes.toJson()), PutOption.DEFAULT))
                    .commit(), "update reservation " + e.key);
            return t.isSucceeded() ? new Lease(e.subnet, attributes, null) : null;
        }
        Instant before = now();
        LeaseGrantResponse grant = call(leases.grant(leaseTtl.toSeconds()), "grant a lease for " + e.key);
        Instant expiration = millis(before.plusSeconds(grant.getTTL()));
        String ck = cacheKey(grant.getHeader().getClusterId(), grant.getID());
        EXPIRATIONS.put(ck, expiration);
        boolean ok = false;
        try {
            TxnResponse t = call(kv.txn().If(unchanged)
                    .Then(Op.put(bytes(e.key), bytes(attributes.toJson()),
                            PutOption.builder().withLeaseId(grant.getID()).build()))
                    .commit(), "update " + e.key);
            ok = t.isSucceeded();
        } finally {
            if (!ok) {
                EXPIRATIONS.remove(ck);
                revokeQuietly(grant.getID());
            }
        }
        if (!ok) {
            return null;
        }
        if (e.leaseId != 0 && e.leaseId != grant.getID()) {
            revokeQuietly(e.leaseId); // it holds nothing now
        }
        return new Lease(e.subnet, attributes, expiration);
    }

    /** Deletes the key if its value and revision are as listed; whether it did. */
    private boolean deleteIfUnchanged(Entry e) {
        TxnResponse t = call(kv.txn()
                .If(new Cmp(bytes(e.key), Cmp.Op.EQUAL, CmpTarget.value(bytes(e.raw))),
                        new Cmp(bytes(e.key), Cmp.Op.EQUAL, CmpTarget.modRevision(e.modRevision)))
                .Then(Op.delete(bytes(e.key), DeleteOption.DEFAULT))
                .commit(), "delete " + e.key);
        return t.isSucceeded();
    }

    private void revokeQuietly(long leaseId) {
        leases.revoke(leaseId).whenComplete((r, t) -> {
            if (t != null) {
                log.debug("could not revoke etcd lease {}: {}", Long.toHexString(leaseId), t.toString());
            }
        });
    }

    /** A prefix get of {@code <prefix>/subnets}, with the TTL of every etcd lease read. */
    private Listing list() {
        GetResponse r = call(kv.get(bytes(subnetsPrefix), GetOption.builder().isPrefix(true).build()),
                "list " + subnetsPrefix);
        long cluster = r.getHeader().getClusterId();
        Map<Long, CompletableFuture<LeaseTimeToLiveResponse>> ttls = new HashMap<>();
        for (KeyValue k : r.getKvs()) {
            if (k.getLease() != 0) {
                ttls.computeIfAbsent(k.getLease(), id -> leases.timeToLive(id, LeaseOption.DEFAULT));
            }
        }
        Instant now = now();
        long deadline = System.nanoTime() + requestTimeout.toNanos(); // all TTL reads together, not each
        Map<Long, Instant> expirations = new HashMap<>();
        for (Map.Entry<Long, CompletableFuture<LeaseTimeToLiveResponse>> t : ttls.entrySet()) {
            String what = "read the TTL of etcd lease " + Long.toHexString(t.getKey());
            LeaseTimeToLiveResponse ttl = call(t.getValue(), what, deadline);
            expirations.put(t.getKey(), expiration(cluster, t.getKey(), ttl.getTTL(), now));
        }
        List<Entry> entries = new ArrayList<>();
        for (KeyValue k : r.getKvs()) {
            Entry e = entry(k, cluster, expirations);
            if (e != null) {
                entries.add(e);
            }
        }
        return new Listing(entries, r.getHeader().getRevision());
    }

    /**
     * Parses one key-value; {@code null} (logged and counted) if the key is not a subnet key. A value that does not
     * parse gives an entry without attributes: its subnet stays taken. {@code expirations} null means "read the TTL".
     */
    private Entry entry(KeyValue k, long cluster, Map<Long, Instant> expirations) {
        String key = k.getKey().toString(StandardCharsets.UTF_8);
        String raw = k.getValue().toString(StandardCharsets.UTF_8);
        Ipv4Prefix subnet;
        boolean canonical;
        try {
            String name = key.startsWith(subnetsPrefix + "/") ? key.substring(subnetsPrefix.length() + 1) : null;
            checkArgument(name != null && name.indexOf('/') < 0, "not under %s/", subnetsPrefix);
            int amp = name.indexOf('&'); // dual stack: "10.5.34.0-24&fc00:0:0:1::-64", IPv4 part is what we need
            subnet = Ipv4Prefix.fromSubnetKey(amp < 0 ? name : name.substring(0, amp));
            canonical = amp < 0 && subnet.toSubnetKey().equals(name);
        } catch (IllegalArgumentException ex) {
            corrupt(key, k.getModRevision(), ex.getMessage());
            return null;
        }
        LeaseAttributes attributes = null;
        try {
            attributes = LeaseAttributes.parse(raw);
        } catch (OverlayException ex) {
            corrupt(key, k.getModRevision(), ex.getMessage());
        }
        Instant expiration = null;
        if (k.getLease() != 0) {
            if (expirations != null) {
                expiration = expirations.get(k.getLease());
            } else {
                Instant now = now();
                LeaseTimeToLiveResponse ttl = call(leases.timeToLive(k.getLease(), LeaseOption.DEFAULT),
                        "read the TTL of etcd lease " + Long.toHexString(k.getLease()));
                expiration = expiration(cluster, k.getLease(), ttl.getTTL(), now);
            }
        }
        return new Entry(key, subnet, canonical, attributes, raw, k.getLease(), k.getModRevision(), expiration);
    }

    private void corrupt(String key, long modRevision, String why) {
        corruptValues.incrementAndGet();
        if (warned.size() > 10_000) {
            warned.clear();
        }
        if (warned.add(key + "@" + modRevision)) {
            log.warn("skipping {} in etcd at {}: {}", key, endpoints, why);
        }
    }

    /** now + TTL, or the instant this JVM already knows for the lease if it agrees within the slack. */
    private static Instant expiration(long cluster, long leaseId, long ttlSeconds, Instant now) {
        Instant computed = millis(now.plusSeconds(Math.max(ttlSeconds, 0)));
        if (ttlSeconds <= 0) {
            return computed; // expired or gone: etcd deletes the key any moment
        }
        String ck = cacheKey(cluster, leaseId);
        Instant known = EXPIRATIONS.get(ck);
        if (known != null && Duration.between(known, computed).abs().compareTo(EXPIRY_SLACK) <= 0) {
            return known;
        }
        if (EXPIRATIONS.size() >= EXPIRATIONS_PRUNE_AT) {
            EXPIRATIONS.values().removeIf(i -> i.isBefore(now));
            if (EXPIRATIONS.size() >= EXPIRATIONS_PRUNE_AT) {
                EXPIRATIONS.clear();
            }
        }
        EXPIRATIONS.put(ck, computed);
        return computed;
    }

    private static String cacheKey(long cluster, long leaseId) {
        return Long.toHexString(cluster) + "/" + Long.toHexString(leaseId);
    }

    private static List<Lease> visible(List<Entry> entries, Instant now) {
        List<Lease> out = new ArrayList<>();
        for (Entry e : entries) {
            if (e.attributes != null && (e.expiration == null || e.expiration.isAfter(now))) {
                out.add(e.lease());
            }
        }
        out.sort((a, b) -> a.subnet().compareTo(b.subnet()));
        return out;
    }

    /** Waits for an etcd call, bounded by the request timeout; every failure becomes {@code STORE_UNAVAILABLE}. */
    private <T> T call(CompletableFuture<T> future, String what) {
        return call(future, what, System.nanoTime() + requestTimeout.toNanos());
    }

    private <T> T call(CompletableFuture<T> future, String what, long deadlineNanos) {
        try {
            return future.get(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw unavailable(what + ": " + cause.getMessage(), cause);
        } catch (TimeoutException e) {
            future.cancel(true);
            throw unavailable(what + ": no answer within " + requestTimeout.toMillis() + " ms", e);
        } catch (InterruptedException e) {
            future.cancel(true);
            Thread.currentThread().interrupt();
            throw unavailable(what + ": interrupted", e);
        }
    }

    private OverlayException unavailable(String message, Throwable cause) {
        return new OverlayException(Kind.STORE_UNAVAILABLE, "etcd at " + endpoints + ": " + message, cause);
    }

    private String keyOf(Ipv4Prefix subnet) {
        return subnetsPrefix + "/" + subnet.toSubnetKey();
    }

    private Instant now() {
        return clock.instant();
    }

    private void ensureOpen() {
        if (closed) {
            throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "the etcd allocator for " + endpoints + " is closed");
        }
    }

    private static Instant millis(Instant i) {
        return i.truncatedTo(ChronoUnit.MILLIS);
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    private static void sleepJittered(int attempt) {
        long max = Math.min(10L * attempt, 100L);
        try {
            Thread.sleep(ThreadLocalRandom.current().nextLong(1, max + 1));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new OverlayException(Kind.STORE_UNAVAILABLE, "interrupted while retrying", e);
        }
    }

    /** One subnet key as listed. */
    private static final class Entry {
        final String key;
        final Ipv4Prefix subnet;
        final boolean canonical;
        final LeaseAttributes attributes;
        final String raw;
        final long leaseId;
        final long modRevision;
        final Instant expiration;

        Entry(String key, Ipv4Prefix subnet, boolean canonical, LeaseAttributes attributes, String raw, long leaseId,
              long modRevision, Instant expiration) {
            this.key = key;
            this.subnet = subnet;
            this.canonical = canonical;
            this.attributes = attributes;
            this.raw = raw;
            this.leaseId = leaseId;
            this.modRevision = modRevision;
            this.expiration = expiration;
        }

        boolean isReservation() {
            return leaseId == 0;
        }

        Lease lease() {
            return new Lease(subnet, attributes, expiration);
        }
    }

    /** A prefix listing and the revision it was read at. */
    private static final class Listing {
        final List<Entry> entries;
        final long revision;

        Listing(List<Entry> entries, long revision) {
            this.entries = entries;
            this.revision = revision;
        }
    }

    /**
     * One watch: a snapshot at revision R, then one long-lived etcd watch from R+1. Everything (etcd callbacks,
     * retries, listener calls) runs on one thread, so the state needs no locks and the listener is never called
     * concurrently.
     */
    private final class EtcdWatch implements Watch {
        private final LeaseListener listener;
        private final ScheduledThreadPoolExecutor thread;
        private final Map<String, Lease> known = new TreeMap<>();
        private volatile boolean stopped;
        private io.etcd.jetcd.Watch.Watcher watcher;
        private int generation;
        private long nextRevision;
        private long backoffMs = BACKOFF_MIN_MS;
        private volatile Thread worker;

        EtcdWatch(LeaseListener listener) {
            this.listener = listener;
            String name = "overlay4j-etcd-watch-" + WATCH_IDS.incrementAndGet();
            this.thread = new ScheduledThreadPoolExecutor(1, r -> {
                Thread t = new Thread(r, name);
                t.setDaemon(true);
                worker = t;
                return t;
            });
            this.thread.setExecuteExistingDelayedTasksAfterShutdownPolicy(false); // close() skips pending retries
            this.thread.setRemoveOnCancelPolicy(true);
        }

        void start() {
            submit(this::resync);
        }

        /** Full re-list: a snapshot to the listener, then an etcd watch from the listing's revision + 1. */
        private void resync() {
            if (stopped) {
                return;
            }
            closeWatcher();
            Listing listing;
            try {
                listing = list();
            } catch (OverlayException e) {
                failed(e, this::resync);
                return;
            }
            known.clear();
            for (Entry e : listing.entries) {
                if (e.attributes != null) {
                    known.put(e.key, e.lease());
                }
            }
            List<Lease> snapshot = new ArrayList<>(known.values());
            snapshot.sort((a, b) -> a.subnet().compareTo(b.subnet()));
            nextRevision = listing.revision + 1;
            deliver(() -> listener.onSnapshot(Collections.unmodifiableList(snapshot)));
            openWatcher();
        }

        private void openWatcher() {
            if (stopped) {
                return;
            }
            closeWatcher();
            int g = ++generation;
            WatchOption option = WatchOption.builder()
                    .isPrefix(true)
                    .withRevision(nextRevision)
                    .withCreateNotify(true)
                    .withRequireLeader(true)
                    .build();
            io.etcd.jetcd.Watch.Listener l = io.etcd.jetcd.Watch.listener(
                    r -> submit(() -> onResponse(g, r)),
                    t -> submit(() -> onWatchError(g, t)),
                    () -> submit(() -> onStreamEnded(g)));
            try {
                watcher = client.getWatchClient().watch(bytes(subnetsPrefix), option, l);
            } catch (RuntimeException e) {
                failed(unavailable("watch " + subnetsPrefix + ": " + e.getMessage(), e), this::openWatcher);
            }
        }

        private void onResponse(int g, WatchResponse r) {
            if (stopped || g != generation) {
                return;
            }
            backoffMs = BACKOFF_MIN_MS;
            List<LeaseEvent> events = new ArrayList<>();
            long cluster = r.getHeader().getClusterId();
            for (WatchEvent ev : r.getEvents()) {
                KeyValue k = ev.getKeyValue();
                nextRevision = Math.max(nextRevision, k.getModRevision() + 1);
                String key = k.getKey().toString(StandardCharsets.UTF_8);
                if (ev.getEventType() == WatchEvent.EventType.DELETE) {
                    Lease gone = known.remove(key);
                    if (gone != null) {
                        events.add(LeaseEvent.removed(gone));
                    }
                    continue;
                }
                if (ev.getEventType() != WatchEvent.EventType.PUT) {
                    continue;
                }
                Entry e;
                try {
                    e = entry(k, cluster, null);
                } catch (OverlayException ex) {
                    // The TTL could not be read (etcd going away?): publish with the TTL unknown as "expiring now"
                    // rather than drop the change; the next event or resync corrects it.
                    log.debug("watch: {}", ex.getMessage());
                    e = entry(k, cluster, Map.of(k.getLease(), now()));
                }
                if (e == null || e.attributes == null) {
                    continue; // logged and counted; whatever we knew for the key stays (no mass withdrawal)
                }
                Lease lease = e.lease();
                known.put(key, lease);
                events.add(LeaseEvent.added(lease));
            }
            if (!events.isEmpty()) {
                deliver(() -> listener.onEvents(Collections.unmodifiableList(events)));
            }
        }

        private void onWatchError(int g, Throwable t) {
            if (stopped || g != generation) {
                return;
            }
            closeWatcher();
            if (t instanceof CompactedException || (t.getMessage() != null && t.getMessage().contains("compacted"))) {
                long rev = t instanceof CompactedException ? ((CompactedException) t).getCompactedRevision() : -1;
                log.info("lease watch on {} fell behind compaction (revision {}); re-listing", subnetsPrefix, rev);
                resync();
                return;
            }
            failed(unavailable("watch " + subnetsPrefix + " from revision " + nextRevision + ": " + t.getMessage(), t),
                    this::openWatcher);
        }

        /** jetcd ends a watcher without an error when we close it (stale generation) or the server ends it. */
        private void onStreamEnded(int g) {
            if (stopped || g != generation) {
                return;
            }
            closeWatcher();
            failed(unavailable("watch " + subnetsPrefix + " ended by the server", null), this::openWatcher);
        }

        /** Tells the listener, then tries {@code retry} again after the backoff (100 ms doubling to 5 s). */
        private void failed(OverlayException e, Runnable retry) {
            log.warn("lease watch: {} (retrying in {} ms)", e.getMessage(), backoffMs);
            deliver(() -> listener.onError(e));
            if (stopped) {
                return;
            }
            try {
                thread.schedule(retry, backoffMs, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.RejectedExecutionException ignored) {
                return; // closed meanwhile
            }
            backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
        }

        private void closeWatcher() {
            generation++;
            io.etcd.jetcd.Watch.Watcher w = watcher;
            watcher = null;
            if (w != null) {
                try {
                    w.close();
                } catch (RuntimeException e) {
                    log.debug("closing an etcd watcher: {}", e.toString());
                }
            }
        }

        private void submit(Runnable r) {
            if (stopped) {
                return;
            }
            try {
                thread.execute(() -> {
                    try {
                        r.run();
                    } catch (RuntimeException e) {
                        log.warn("lease watch on {} failed unexpectedly", subnetsPrefix, e);
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException ignored) {
                // closed
            }
        }

        private void deliver(Runnable call) {
            if (stopped) {
                return;
            }
            try {
                call.run();
            } catch (RuntimeException e) {
                log.warn("lease listener threw; the watch on {} continues", subnetsPrefix, e);
            }
        }

        @Override
        public void close() {
            if (stopped) {
                return;
            }
            stopped = true;
            watches.remove(this);
            try {
                thread.execute(this::closeWatcher);
            } catch (java.util.concurrent.RejectedExecutionException ignored) {
                // already shut down
            }
            thread.shutdown();
            if (Thread.currentThread() != worker) {
                try {
                    if (!thread.awaitTermination(2, TimeUnit.SECONDS)) {
                        thread.shutdownNow();
                    }
                } catch (InterruptedException e) {
                    thread.shutdownNow();
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    /** Builds an {@link EtcdSubnetAllocator}. Options are immutable once built; defaults are flannel's. */
    public static final class Builder {
        private List<String> endpoints = List.of("http://127.0.0.1:2379");
        private String prefix = "/coreos.com/network";
        private Duration leaseTtl = Duration.ofHours(24);
        private Path caFile;
        private Path certFile;
        private Path keyFile;
        private String user;
        private String password;
        private Duration requestTimeout = Duration.ofSeconds(10);
        private Clock clock = Clock.systemUTC();

        private Builder() {
        }

        /** The etcd endpoints (URLs); default {@code http://127.0.0.1:2379}. */
        public Builder endpoints(String... endpoints) {
            return endpoints(List.of(endpoints));
        }

        /** The etcd endpoints (URLs); default {@code http://127.0.0.1:2379}. */
        public Builder endpoints(List<String> endpoints) {
            requireNonNull(endpoints, "endpoints");
            checkArgument(!endpoints.isEmpty(), "at least one etcd endpoint is needed");
            this.endpoints = List.copyOf(endpoints);
            return this;
        }

        /** The key prefix, as flanneld's {@code --etcd-prefix}; default {@code /coreos.com/network}. */
        public Builder prefix(String prefix) {
            requireNonNull(prefix, "prefix");
            String p = prefix;
            while (p.length() > 1 && p.endsWith("/")) {
                p = p.substring(0, p.length() - 1);
            }
            checkArgument(p.startsWith("/") && p.length() > 1, "the etcd prefix must be an absolute path: %s", prefix);
            this.prefix = p;
            return this;
        }

        /** How long a lease lives unless renewed (whole seconds); default 24 hours, as flannel. */
        public Builder leaseTtl(Duration leaseTtl) {
            this.leaseTtl = requireNonNull(leaseTtl, "leaseTtl");
            return this;
        }

        /**
         * TLS files, as flanneld's {@code --etcd-cafile/--etcd-certfile/--etcd-keyfile}. TLS is used only if both the
         * certificate and the key are given (as flannel); {@code caFile} may be {@code null} for the JVM's trust store.
         */
        public Builder tls(Path caFile, Path certFile, Path keyFile) {
            this.caFile = caFile;
            this.certFile = certFile;
            this.keyFile = keyFile;
            return this;
        }

        /** etcd user name and password (flanneld's {@code --etcd-username/--etcd-password}). */
        public Builder credentials(String user, String password) {
            this.user = requireNonNull(user, "user");
            this.password = requireNonNull(password, "password");
            return this;
        }

        /** The bound on every etcd call; default 10 s. */
        public Builder requestTimeout(Duration requestTimeout) {
            this.requestTimeout = requireNonNull(requestTimeout, "requestTimeout");
            return this;
        }

        /** The clock for lease expirations (tests); default the system UTC clock. */
        public Builder clock(Clock clock) {
            this.clock = requireNonNull(clock, "clock");
            return this;
        }

        /**
         * Creates the etcd client. etcd need not be up: calls fail later with {@code STORE_UNAVAILABLE}.
         *
         * @throws IllegalArgumentException if an option is invalid
         * @throws OverlayException         {@code CONFIG_INVALID} if the TLS files cannot be loaded
         */
        public EtcdSubnetAllocator build() {
            checkArgument(leaseTtl.toSeconds() >= 1, "leaseTtl must be at least 1 s: %s", leaseTtl);
            checkArgument(!requestTimeout.isNegative() && !requestTimeout.isZero(),
                    "requestTimeout must be positive: %s", requestTimeout);
            ClientBuilder cb = Client.builder()
                    .endpoints(endpoints.toArray(new String[0]))
                    // Fail fast while etcd is down instead of queueing until the request timeout.
                    .waitForReady(false)
                    .connectTimeout(requestTimeout)
                    .retryMaxDuration(requestTimeout);
            if (certFile != null && keyFile != null) {
                try {
                    cb.sslContext(ssl -> {
                        ssl.keyManager(certFile.toFile(), keyFile.toFile()).protocols("TLSv1.3", "TLSv1.2");
                        if (caFile != null) {
                            ssl.trustManager(caFile.toFile());
                        }
                    });
                } catch (SSLException | RuntimeException e) {
                    throw new OverlayException(Kind.CONFIG_INVALID, "cannot load the etcd TLS files: " + e, e);
                }
            } else if (caFile != null || certFile != null || keyFile != null) {
                log.warn("etcd TLS needs both a certificate and a key; connecting to {} without TLS", endpoints);
            }
            if (user != null) {
                cb.user(bytes(user)).password(bytes(password));
            }
            return new EtcdSubnetAllocator(this, cb.build());
        }
    }
}
