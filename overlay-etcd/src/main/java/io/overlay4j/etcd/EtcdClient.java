package io.overlay4j.etcd;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.ClientBuilder;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
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
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import io.overlay4j.etcd.LeaseCodec.Entry;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The allocator's view of etcd: the jetcd client, the few operations flannel's layout needs (list, get, create,
 * rewrite, delete), each bounded by the request timeout and failing as {@code STORE_UNAVAILABLE}, and what this
 * allocator learnt about its own etcd leases.
 *
 * <p>Network namespaces: every jetcd call is started from one "home" thread, which also built the client, so the
 * sockets jetcd opens (at the first call, and on every reconnect from the I/O threads the home thread started) live in
 * the home thread's namespace, not in that of whichever thread called the allocator. The home thread comes from the
 * allocator's thread factory; by default it is started by the thread that builds the allocator.
 */
final class EtcdClient implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(EtcdSubnetAllocator.class);
    private static final Duration EXPIRY_SLACK = Duration.ofSeconds(2);
    private static final int EXPIRATIONS_PRUNE_AT = 4096;

    private final String endpoints;
    private final Duration requestTimeout;
    private final Duration leaseTtl;
    private final Clock clock;
    private final LeaseCodec codec;
    private final ThreadPoolExecutor home;
    private final ExecutorService jetcdExecutor;
    private final Client client;
    /**
     * Expirations this allocator learnt from its grants and TTL reads, by etcd lease id, so that it reports one
     * instant for one lease (its own grant's, not a later {@code now + TTL} rounded to seconds). Per allocator.
     */
    private final Map<Long, Instant> expirations = new ConcurrentHashMap<>();
    /** The etcd lease this allocator last attached to each subnet's key: proof that the key is ours. */
    private final Map<Ipv4Prefix, Long> ownLeases = new ConcurrentHashMap<>();

    /**
     * Starts the home thread (from {@code threads}) and builds the jetcd client on it.
     *
     * @param threads makes the home thread and, when {@code ownExecutor}, jetcd's callback threads
     */
    EtcdClient(ClientBuilder builder, String endpoints, Duration requestTimeout, Duration leaseTtl, Clock clock,
               LeaseCodec codec, ThreadFactory threads, boolean ownExecutor) {
        this.endpoints = endpoints;
        this.requestTimeout = requestTimeout;
        this.leaseTtl = leaseTtl;
        this.clock = clock;
        this.codec = codec;
        this.home = new ThreadPoolExecutor(1, 1, 0, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(), threads);
        // Started here, by the thread that builds the allocator: a default-made thread inherits its namespace.
        home.prestartAllCoreThreads();
        this.jetcdExecutor = ownExecutor ? java.util.concurrent.Executors.newCachedThreadPool(threads) : null;
        if (jetcdExecutor != null) {
            builder.executorService(jetcdExecutor);
        }
        try {
            this.client = onHome(() -> {
                Client c = builder.build();
                // jetcd makes its gRPC channel and Vert.x event loops lazily: make them here, on the home thread.
                c.getKVClient();
                c.getLeaseClient();
                c.getWatchClient();
                return c;
            });
        } catch (RuntimeException e) {
            home.shutdownNow();
            if (jetcdExecutor != null) {
                jetcdExecutor.shutdownNow();
            }
            throw e;
        }
    }

    /** Runs {@code task} on the home thread and returns its result (the task must not block). */
    <T> T onHome(Supplier<T> task) {
        Future<T> f;
        try {
            f = home.submit(task::get);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "the etcd allocator for " + endpoints + " is closed");
        }
        try {
            return f.get();
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException) {
                throw (RuntimeException) cause;
            }
            if (cause instanceof Error) {
                throw (Error) cause;
            }
            throw new IllegalStateException(cause);
        } catch (InterruptedException e) {
            f.cancel(false);
            Thread.currentThread().interrupt();
            throw unavailable("interrupted", e);
        }
    }

    /** Runs {@code task} (which must not block) on the home thread, e.g. to start a thread that inherits its ns. */
    void startOnHome(Runnable task) {
        onHome(() -> {
            task.run();
            return null;
        });
    }

    /** Starts a jetcd call on the home thread; the caller waits for the returned future. */
    private <T> CompletableFuture<T> start(Supplier<CompletableFuture<T>> call) {
        return onHome(call);
    }

    /** A watch on everything under {@code key}, opened from the home thread. */
    Watch.Watcher watch(String key, WatchOption option, Watch.Listener listener) {
        return onHome(() -> client.getWatchClient().watch(bytes(key), option, listener));
    }

    /** Reads one key; {@code null} if it does not exist. */
    KeyValue get(String key) {
        GetResponse r = call(start(() -> client.getKVClient().get(bytes(key))), "get " + key);
        return r.getKvs().isEmpty() ? null : r.getKvs().get(0);
    }

    /** A prefix get of {@code <prefix>/subnets} (flannel's listing), with the TTL of every etcd lease if asked. */
    Listing list(boolean withTtl) {
        String prefix = codec.subnetsPrefix();
        GetResponse r = call(start(() -> client.getKVClient().get(bytes(prefix),
                GetOption.builder().isPrefix(true).build())), "list " + prefix);
        Map<Long, Instant> expires = withTtl ? expirations(r.getKvs()) : Map.of();
        List<Entry> entries = new ArrayList<>();
        for (KeyValue k : r.getKvs()) {
            Entry e = codec.decode(text(k.getKey()), text(k.getValue()), k.getLease(), k.getModRevision(),
                    expires.get(k.getLease()));
            if (e != null) {
                entries.add(e);
            }
        }
        return new Listing(entries, r.getHeader().getRevision());
    }

    /** The expirations of the etcd leases of {@code kvs}: all TTL reads at once, bounded together. */
    private Map<Long, Instant> expirations(List<KeyValue> kvs) {
        Map<Long, CompletableFuture<LeaseTimeToLiveResponse>> ttls = new HashMap<>();
        for (KeyValue k : kvs) {
            if (k.getLease() != 0 && !ttls.containsKey(k.getLease())) {
                long id = k.getLease();
                ttls.put(id, start(() -> client.getLeaseClient().timeToLive(id, LeaseOption.DEFAULT)));
            }
        }
        Instant now = now();
        long deadline = System.nanoTime() + requestTimeout.toNanos();
        Map<Long, Instant> out = new HashMap<>();
        for (Map.Entry<Long, CompletableFuture<LeaseTimeToLiveResponse>> t : ttls.entrySet()) {
            LeaseTimeToLiveResponse ttl = call(t.getValue(), "read the TTL of etcd lease "
                    + Long.toHexString(t.getKey()), deadline);
            out.put(t.getKey(), expiration(t.getKey(), ttl.getTTL(), now));
        }
        return out;
    }

    /** When etcd lease {@code id} ends, as etcd reports it now. */
    Instant expirationOf(long id) {
        Instant now = now();
        LeaseTimeToLiveResponse ttl = call(start(() -> client.getLeaseClient().timeToLive(id, LeaseOption.DEFAULT)),
                "read the TTL of etcd lease " + Long.toHexString(id));
        return expiration(id, ttl.getTTL(), now);
    }

    /**
     * flannel's create: grant, then {@code If(version(key) == 0) Then(put(key, json, lease))}. {@code null} if the
     * key exists (a lost race); the grant is then revoked.
     */
    Lease create(Ipv4Prefix subnet, LeaseAttributes attributes) {
        String key = codec.keyOf(subnet);
        Cmp absent = new Cmp(bytes(key), Cmp.Op.EQUAL, CmpTarget.version(0));
        Instant expiration = putWithNewLease(key, subnet, absent, attributes, "create " + key);
        return expiration == null ? null : new Lease(subnet, attributes, expiration);
    }

    /**
     * Writes {@code attributes} to an existing key if it is unchanged since {@code e} was read: with a fresh etcd
     * lease, or without one when {@code reservation}. The key's old etcd lease is revoked when {@code revokeOld} (it
     * was ours and holds nothing now; flannel lets it run out) or when this allocator granted it. {@code null} if the
     * key changed meanwhile.
     */
    Lease rewrite(Entry e, LeaseAttributes attributes, boolean reservation, boolean revokeOld) {
        Cmp unchanged = new Cmp(bytes(e.key()), Cmp.Op.EQUAL, CmpTarget.modRevision(e.modRevision()));
        if (reservation) {
            TxnResponse t = call(start(() -> client.getKVClient().txn().If(unchanged)
                    .Then(Op.put(bytes(e.key()), bytes(attributes.toJson()), PutOption.DEFAULT))
                    .commit()), "update reservation " + e.key());
            if (!t.isSucceeded()) {
                return null;
            }
            Long own = ownLeases.remove(e.subnet());
            if (own != null) {
                revokeQuietly(own);
            } else if (revokeOld && e.leaseId() != 0) {
                revokeQuietly(e.leaseId());
            }
            return new Lease(e.subnet(), attributes, null);
        }
        Long own = ownLeases.get(e.subnet());
        Instant expiration = putWithNewLease(e.key(), e.subnet(), unchanged, attributes, "update " + e.key());
        if (expiration == null) {
            return null;
        }
        if (revokeOld && e.leaseId() != 0 && !Long.valueOf(e.leaseId()).equals(own)) {
            revokeQuietly(e.leaseId()); // (our own previous lease was revoked with the new put)
        }
        return new Lease(e.subnet(), attributes, expiration);
    }

    /**
     * Grant + a transaction putting the value with the new lease if {@code condition}; the expiration, or null if
     * the condition failed. The new lease becomes the subnet's own lease; the previous own one is revoked.
     */
    private Instant putWithNewLease(String key, Ipv4Prefix subnet, Cmp condition, LeaseAttributes attributes,
                                    String what) {
        Instant before = now();
        LeaseGrantResponse grant = call(start(() -> client.getLeaseClient().grant(leaseTtl.toSeconds())),
                "grant a lease for " + key);
        long id = grant.getID();
        // Known before the put, so a watch of this allocator that sees the put at once reports this very instant.
        Instant expiration = millis(before.plusSeconds(grant.getTTL()));
        expirations.put(id, expiration);
        boolean ok = false;
        try {
            TxnResponse t = call(start(() -> client.getKVClient().txn().If(condition)
                    .Then(Op.put(bytes(key), bytes(attributes.toJson()), PutOption.builder().withLeaseId(id).build()))
                    .commit()), what);
            ok = t.isSucceeded();
        } finally {
            if (!ok) {
                expirations.remove(id);
                revokeQuietly(id);
            }
        }
        if (!ok) {
            return null;
        }
        Long previous = ownLeases.put(subnet, id);
        if (previous != null && previous != id) {
            revokeQuietly(previous);
        }
        return expiration;
    }

    /** Whether {@code leaseId} is the etcd lease this allocator last attached to {@code subnet}'s key. */
    boolean isOwnLease(Ipv4Prefix subnet, long leaseId) {
        return leaseId != 0 && Long.valueOf(leaseId).equals(ownLeases.get(subnet));
    }

    /** Deletes the key if its value and revision are as read; whether it did. */
    boolean deleteIfUnchanged(Entry e) {
        TxnResponse t = call(start(() -> client.getKVClient().txn()
                .If(new Cmp(bytes(e.key()), Cmp.Op.EQUAL, CmpTarget.value(bytes(e.raw()))),
                        new Cmp(bytes(e.key()), Cmp.Op.EQUAL, CmpTarget.modRevision(e.modRevision())))
                .Then(Op.delete(bytes(e.key()), DeleteOption.DEFAULT))
                .commit()), "delete " + e.key());
        if (t.isSucceeded() && ownLeases.remove(e.subnet(), e.leaseId())) {
            revokeQuietly(e.leaseId());
        }
        return t.isSucceeded();
    }

    private void revokeQuietly(long leaseId) {
        expirations.remove(leaseId);
        try {
            start(() -> client.getLeaseClient().revoke(leaseId)).whenComplete((r, t) -> {
                if (t != null) {
                    log.debug("could not revoke etcd lease {}: {}", Long.toHexString(leaseId), t.toString());
                }
            });
        } catch (OverlayException e) {
            log.debug("could not revoke etcd lease {}: {}", Long.toHexString(leaseId), e.getMessage());
        }
    }

    /** now + TTL, or the instant this allocator already knows for the lease if it agrees within the slack. */
    private Instant expiration(long leaseId, long ttlSeconds, Instant now) {
        Instant computed = millis(now.plusSeconds(Math.max(ttlSeconds, 0)));
        if (ttlSeconds <= 0) {
            return computed; // expired or gone: etcd deletes the key any moment
        }
        Instant known = expirations.get(leaseId);
        if (known != null && Duration.between(known, computed).abs().compareTo(EXPIRY_SLACK) <= 0) {
            return known;
        }
        if (expirations.size() >= EXPIRATIONS_PRUNE_AT) {
            expirations.values().removeIf(i -> i.isBefore(now));
        }
        if (expirations.size() < EXPIRATIONS_PRUNE_AT) {
            expirations.put(leaseId, computed);
        }
        return computed;
    }

    /** Waits for an etcd call, bounded by the request timeout; every failure becomes {@code STORE_UNAVAILABLE}. */
    <T> T call(CompletableFuture<T> future, String what) {
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

    /** {@code STORE_UNAVAILABLE} with the message {@code etcd at <endpoints>: <message>}. */
    OverlayException unavailable(String message, Throwable cause) {
        return new OverlayException(Kind.STORE_UNAVAILABLE, "etcd at " + endpoints + ": " + message, cause);
    }

    Instant now() {
        return clock.instant();
    }

    /** Closes the jetcd client, then the home thread and jetcd's executor if it is ours. Idempotent. */
    @Override
    public void close() {
        if (home.isShutdown()) {
            return;
        }
        try {
            client.close();
        } finally {
            home.shutdownNow();
            if (jetcdExecutor != null) {
                jetcdExecutor.shutdownNow();
            }
        }
    }

    static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    static String text(ByteSequence b) {
        return b.toString(StandardCharsets.UTF_8);
    }

    private static Instant millis(Instant i) {
        return i.truncatedTo(ChronoUnit.MILLIS);
    }

    /** A prefix listing and the revision it was read at. */
    record Listing(List<Entry> entries, long revision) {
    }
}
