package io.overlay4j.etcd;

import static java.util.Objects.requireNonNull;

import io.etcd.jetcd.Client;
import io.etcd.jetcd.ClientBuilder;
import io.etcd.jetcd.KeyValue;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseRules;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.LeaseCodec.Entry;
import java.net.Inet4Address;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link SubnetAllocator} on etcd v3 that shares its storage with upstream flanneld (flannel-facts §2): the config at
 * {@code <prefix>/config}, one key per lease at {@code <prefix>/subnets/<a.b.c.d-len>} holding flannel's lease JSON
 * byte for byte, attached to an etcd lease granted with the lease TTL (24 h by default). overlay4j nodes and flanneld
 * nodes can therefore share one network. Subnets are picked by flannel's rules as {@link LeaseRules#plan} holds them.
 *
 * <p>Unlike flanneld (flannel-facts Appendix A), this allocator
 * <ul>
 *   <li>retries a lost create race (re-lists and picks again, up to 20 times with a small jittered backoff);</li>
 *   <li>keeps reservations (keys without an etcd lease) as reservations: they count as taken, go only to their
 *       PublicIP, are rewritten without a lease and never deleted;</li>
 *   <li>skips, counts ({@link #corruptValues()}) and logs once every key or value it cannot parse, and every lease that
 *       must not be routed ({@link LeaseRules#check}: a poisoned {@code <container-ip>-32} or {@code 0.0.0.0-0} key,
 *       a PublicIP of 0.0.0.0), without failing a listing or withdrawing other leases from a watch;</li>
 *   <li>treats a node's own key as authoritative at renewal: a value it cannot read, one without a usable PublicIP,
 *       or any value under the etcd lease it attached, is rewritten rather than taken as the loss of the subnet;</li>
 *   <li>after a compaction re-lists and delivers a fresh {@link LeaseListener#onSnapshot}, so attribute changes made
 *       during the gap are not lost.</li>
 * </ul>
 *
 * <p>Expirations are {@code now + the TTL etcd reports} (whole seconds), so two processes agree on a lease's expiration
 * to within about a second; one allocator reports one instant for the leases it granted itself.
 *
 * <p>Every etcd failure is an {@link OverlayException} of kind {@code STORE_UNAVAILABLE} with the message
 * {@code etcd at <endpoints>: <cause>} and the cause chained; every call is bounded by the request timeout. With
 * several endpoints (a cluster) the client fails over between them.
 *
 * <p>Threads and network namespaces: the allocator reaches etcd from the network namespace of the thread that builds
 * it (or of the threads {@link Builder#threadFactory} makes), whatever thread later calls it: every etcd call is
 * started from the allocator's own thread, which also starts jetcd's I/O threads. Nodes in other namespaces may
 * share one allocator.
 *
 * <pre>{@code
 * try (EtcdSubnetAllocator alloc = EtcdSubnetAllocator.builder()
 *         .endpoints("http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379")
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
    private static final AtomicInteger THREAD_IDS = new AtomicInteger();

    private final EtcdClient etcd;
    private final LeaseCodec codec;
    private final String endpoints;
    private final String prefix;
    private final String configKey;
    private final ThreadFactory threads;
    private final AtomicLong lostRaces = new AtomicLong();
    private final List<EtcdLeaseWatch> watches = new CopyOnWriteArrayList<>();
    private volatile boolean closed;

    private EtcdSubnetAllocator(Builder b, ClientBuilder client) {
        this.endpoints = String.join(",", b.endpoints);
        this.prefix = b.prefix;
        this.configKey = prefix + "/config";
        this.codec = new LeaseCodec(prefix, "etcd at " + endpoints);
        this.threads = b.threadFactory != null ? b.threadFactory : r -> {
            Thread t = new Thread(r, "overlay4j-etcd-" + THREAD_IDS.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
        this.etcd = new EtcdClient(client, endpoints, b.requestTimeout, b.leaseTtl, b.clock, codec, threads,
                b.threadFactory != null);
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
     * How many distinct subnet keys or lease values this allocator skipped since it was built: those that cannot be
     * parsed, and leases that must not be routed ({@link LeaseRules#check}). Each is logged once.
     */
    public long corruptValues() {
        return codec.skipped();
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
        KeyValue kv = etcd.get(configKey);
        if (kv == null) {
            throw new OverlayException(Kind.CONFIG_NOT_FOUND, CONFIG_NOT_FOUND_MESSAGE);
        }
        return NetworkConfig.parse(EtcdClient.text(kv.getValue()));
    }

    /**
     * {@inheritDoc}
     *
     * <p>As {@link LeaseRules#plan}: the first key holding our PublicIP is reused if it fits the config (its value
     * rewritten with {@code attributes} and a fresh etcd lease; a reservation stays without one); one that does not fit
     * is deleted unless it is a reservation. Then {@code previousSubnet} if it overlaps no key and fits; else a random
     * one of the first 100 free subnets. A lost create race re-lists and tries again, up to 20 times.
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
            Lease lease = tryAcquire(config, etcd.list(false), attributes, previousSubnet, attempt == 1);
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
    private Lease tryAcquire(NetworkConfig config, EtcdClient.Listing listing, LeaseAttributes attributes,
                             Ipv4Prefix previous, boolean first) {
        Map<LeaseRules.Entry, Entry> byPlanEntry = new IdentityHashMap<>();
        List<LeaseRules.Entry> entries = new ArrayList<>();
        for (Entry e : listing.entries()) {
            LeaseRules.Entry p = e.planEntry();
            if (!e.canonical() && e.attributes() != null && e.attributes().publicIp().equals(attributes.publicIp())) {
                log.warn("{} holds {} but is not an IPv4-only subnet key; leaving it alone", e.key(),
                        attributes.publicIp().getHostAddress());
            }
            byPlanEntry.put(p, e);
            entries.add(p);
        }
        LeaseRules.Plan plan = LeaseRules.plan(config, entries, attributes.publicIp(), previous);
        for (String note : plan.notes()) {
            if (first) {
                log.info(note);
            } else {
                log.debug(note);
            }
        }
        for (LeaseRules.Entry d : plan.delete()) {
            if (!etcd.deleteIfUnchanged(byPlanEntry.get(d))) {
                return null;
            }
        }
        switch (plan.action()) {
            case REUSE: {
                LeaseRules.Entry reuse = plan.reuse();
                return etcd.rewrite(byPlanEntry.get(reuse), attributes, reuse.reservation(), true);
            }
            case PREVIOUS:
            case RANDOM: {
                Lease lease = etcd.create(plan.subnet(), attributes);
                if (lease != null) {
                    log.info("acquired subnet {} for {}", plan.subnet(), attributes.publicIp().getHostAddress());
                }
                return lease;
            }
            default:
                throw LeaseRules.exhausted(config);
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>The key is rewritten with a fresh etcd lease (a reservation without one), conditionally on being unchanged
     * since it was read. As flanneld's unconditional renewal {@code Put}, our own key is authoritative: a value that
     * cannot be read, or that names no usable PublicIP, or any value still attached to the etcd lease this allocator
     * gave the key, is overwritten with a warning. If the key is gone and the subnet is still free and fits the config,
     * it is created again.
     *
     * @throws OverlayException {@code LEASE_LOST} if another node's readable value holds the subnet (or it is gone and
     *                          taken or no longer fits), {@code STORE_UNAVAILABLE}
     */
    @Override
    public Lease renew(Lease lease) {
        requireNonNull(lease, "lease");
        ensureOpen();
        Ipv4Prefix subnet = lease.subnet();
        String key = codec.keyOf(subnet);
        Inet4Address ours = lease.attributes().publicIp();
        for (int attempt = 1; attempt <= RACE_RETRIES; attempt++) {
            KeyValue kv = etcd.get(key);
            if (kv == null) {
                NetworkConfig config = networkConfig();
                boolean free = etcd.list(false).entries().stream()
                        .noneMatch(o -> LeaseRules.blocks(config, o.subnet()) && o.subnet().overlaps(subnet));
                if (!free || !LeaseRules.fits(config, subnet)) {
                    throw new OverlayException(Kind.LEASE_LOST, "lease " + subnet + " is gone and the subnet "
                            + (free ? "no longer fits the network config" : "overlaps another lease"));
                }
                log.warn("lease {} had expired or was deleted; creating it again", subnet);
                Lease created = etcd.create(subnet, lease.attributes());
                if (created != null) {
                    return created;
                }
            } else {
                Entry e = codec.decode(key, EtcdClient.text(kv.getValue()), kv.getLease(), kv.getModRevision(), null);
                LeaseAttributes found = e.attributes();
                boolean mine = found != null && found.publicIp().equals(ours);
                if (!mine) {
                    refuseIfHeldByAnother(e, found);
                    log.warn("our key {} holds {} ({}); rewriting it as ours", key, e.raw(),
                            found == null ? "unreadable" : etcd.isOwnLease(subnet, e.leaseId())
                                    ? "under our etcd lease" : "no usable PublicIP");
                }
                boolean reservation = lease.isReservation() || (mine && e.isReservation());
                Lease renewed = etcd.rewrite(e, lease.attributes(), reservation, mine);
                if (renewed != null) {
                    return renewed;
                }
            }
            sleepJittered(attempt);
        }
        throw new OverlayException(Kind.LEASE_CONFLICT, "could not renew " + subnet + ": it kept changing under us");
    }

    /** {@code LEASE_LOST} unless the foreign value under our key is no claim (unreadable, unusable, our lease). */
    private void refuseIfHeldByAnother(Entry e, LeaseAttributes found) {
        if (found == null || etcd.isOwnLease(e.subnet(), e.leaseId())) {
            return;
        }
        Inet4Address holder = found.publicIp();
        if (!LeaseRules.isUsablePublicIp(holder)) {
            return;
        }
        NetworkConfig config = networkConfig();
        if (config.network().contains(holder)) {
            return;
        }
        throw new OverlayException(Kind.LEASE_LOST, "subnet " + e.subnet() + " is now held by "
                + holder.getHostAddress());
    }

    /** {@inheritDoc} Deletes the key only while it still holds our PublicIP, unchanged, with an etcd lease. */
    @Override
    public void release(Lease lease) {
        requireNonNull(lease, "lease");
        ensureOpen();
        String key = codec.keyOf(lease.subnet());
        KeyValue kv = etcd.get(key);
        if (kv == null) {
            return;
        }
        Entry e = codec.decode(key, EtcdClient.text(kv.getValue()), kv.getLease(), kv.getModRevision(), null);
        if (e.attributes() == null || e.isReservation()
                || !e.attributes().publicIp().equals(lease.attributes().publicIp())) {
            return;
        }
        if (etcd.deleteIfUnchanged(e)) {
            log.info("released lease {}", lease.subnet());
        } else {
            log.info("lease {} changed while releasing it; left alone", lease.subnet());
        }
    }

    /** {@inheritDoc} Keys and values that cannot be parsed or routed are skipped (see {@link #corruptValues()}). */
    @Override
    public List<Lease> leases() {
        ensureOpen();
        NetworkConfig config = networkConfig();
        Instant now = etcd.now();
        List<Lease> out = new ArrayList<>();
        for (Entry e : etcd.list(true).entries()) {
            codec.routable(config, e).filter(l -> l.expiration() == null || l.expiration().isAfter(now))
                    .ifPresent(out::add);
        }
        out.sort((a, b) -> a.subnet().compareTo(b.subnet()));
        return out;
    }

    /**
     * {@inheritDoc}
     *
     * <p>One etcd watch on {@code <prefix>/subnets} from the snapshot's revision + 1. After an error it resumes from
     * the last revision seen + 1, backing off from 100 ms to 5 s and reporting each failure to
     * {@link LeaseListener#onError} and the recovery to {@link LeaseListener#onResumed}. If etcd has compacted past
     * that revision, the watch re-lists and delivers a new {@link LeaseListener#onSnapshot}. A PUT whose key or value
     * cannot be parsed or routed is logged and counted, and changes nothing the listener knows. Each watch has its own
     * thread.
     */
    @Override
    public Watch watch(LeaseListener listener) {
        requireNonNull(listener, "listener");
        ensureOpen();
        EtcdLeaseWatch[] self = new EtcdLeaseWatch[1];
        EtcdLeaseWatch w = new EtcdLeaseWatch(etcd, codec, this::networkConfig, listener, threads,
                () -> watches.remove(self[0]));
        self[0] = w;
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
        for (EtcdLeaseWatch w : watches) {
            w.close();
        }
        etcd.close();
    }

    private void ensureOpen() {
        if (closed) {
            throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "the etcd allocator for " + endpoints + " is closed");
        }
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

    /**
     * Builds an {@link EtcdSubnetAllocator}. Options are immutable once built; defaults are flannel's. Every bad option
     * value is an {@link OverlayException} of kind {@code ILLEGAL_ARGUMENT} whose message names the option.
     */
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
        private ThreadFactory threadFactory;

        private Builder() {
        }

        /** The etcd endpoints ({@code http://} or {@code https://} URLs), all members of one cluster. */
        public Builder endpoints(String... endpoints) {
            return endpoints(List.of(option("endpoints", endpoints)));
        }

        /**
         * The etcd endpoints ({@code http://} or {@code https://} URLs with a host and port); default
         * {@code http://127.0.0.1:2379}. With several, the client fails over between them.
         */
        public Builder endpoints(List<String> endpoints) {
            option("endpoints", endpoints);
            if (endpoints.isEmpty()) {
                throw illegal("endpoints: at least one etcd endpoint is needed");
            }
            for (String ep : endpoints) {
                checkEndpoint(ep);
            }
            this.endpoints = List.copyOf(endpoints);
            return this;
        }

        private static void checkEndpoint(String ep) {
            String why = null;
            try {
                URI u = new URI(option("endpoints", ep));
                if (!"http".equals(u.getScheme()) && !"https".equals(u.getScheme())) {
                    why = "not an http:// or https:// URL";
                } else if (u.getHost() == null || u.getPort() < 0) {
                    why = "needs a host and a port";
                }
            } catch (URISyntaxException e) {
                why = e.getMessage();
            }
            if (why != null) {
                throw illegal("endpoints: '" + ep + "' is " + (why.startsWith("not") || why.startsWith("needs") ? ""
                        : "invalid: ") + why);
            }
        }

        /** The key prefix, as flanneld's {@code --etcd-prefix}, an absolute path; default /coreos.com/network. */
        public Builder prefix(String prefix) {
            String p = option("prefix", prefix);
            while (p.length() > 1 && p.endsWith("/")) {
                p = p.substring(0, p.length() - 1);
            }
            if (!p.startsWith("/") || p.length() < 2) {
                throw illegal("prefix must be an absolute path such as /coreos.com/network: '" + prefix + "'");
            }
            this.prefix = p;
            return this;
        }

        /** How long a lease lives unless renewed (whole seconds, at least 1); default 24 hours, as flannel. */
        public Builder leaseTtl(Duration leaseTtl) {
            if (option("leaseTtl", leaseTtl).toSeconds() < 1) {
                throw illegal("leaseTtl must be at least 1 s: " + leaseTtl);
            }
            this.leaseTtl = leaseTtl;
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
            this.user = option("credentials user", user);
            this.password = option("credentials password", password);
            return this;
        }

        /** The bound on every etcd call; default 10 s. */
        public Builder requestTimeout(Duration requestTimeout) {
            if (option("requestTimeout", requestTimeout).isNegative() || requestTimeout.isZero()) {
                throw illegal("requestTimeout must be positive: " + requestTimeout);
            }
            this.requestTimeout = requestTimeout;
            return this;
        }

        /** The clock for lease expirations (tests); default the system UTC clock. */
        public Builder clock(Clock clock) {
            this.clock = option("clock", clock);
            return this;
        }

        /**
         * Makes every thread the allocator starts: the thread all etcd calls start from, one per watch, and jetcd's
         * callback executor. jetcd's gRPC I/O threads are started from those threads and inherit their network
         * namespace. Pass {@code NetworkNamespace.threadFactory()} to reach etcd from a given namespace. Default:
         * daemon threads named {@code overlay4j-etcd-N}, started from the thread that calls {@link #build()} (the
         * first) or from the allocator's own thread (the others), so all live in the builder's namespace.
         */
        public Builder threadFactory(ThreadFactory threadFactory) {
            this.threadFactory = option("threadFactory", threadFactory);
            return this;
        }

        /**
         * Creates the etcd client and the allocator's first thread (in the calling thread's network namespace, unless
         * a {@link #threadFactory} is given). etcd need not be up: calls fail later with {@code STORE_UNAVAILABLE}.
         *
         * @throws OverlayException {@code CONFIG_INVALID} if the TLS files cannot be loaded, {@code ILLEGAL_ARGUMENT}
         *                          if the client cannot be created
         */
        public EtcdSubnetAllocator build() {
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
                cb.user(EtcdClient.bytes(user)).password(EtcdClient.bytes(password));
            }
            try {
                return new EtcdSubnetAllocator(this, cb);
            } catch (OverlayException e) {
                throw e;
            } catch (RuntimeException e) {
                throw illegal("cannot create the etcd client for " + endpoints + ": " + e);
            }
        }

        private static <T> T option(String name, T value) {
            if (value == null) {
                throw illegal(name + " must not be null");
            }
            return value;
        }

        private static OverlayException illegal(String message) {
            return new OverlayException(Kind.ILLEGAL_ARGUMENT, "EtcdSubnetAllocator: " + message);
        }
    }
}
