package io.overlay4j;

import static java.util.Objects.requireNonNull;

import io.overlay4j.OverlayException.Kind;
import io.overlay4j.internal.LeaseFile;
import io.overlay4j.internal.LeaseFile.Held;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The embedded {@link SubnetAllocator}: all leases of one network in a single JSON file on the host, shared safely by
 * any number of allocators in any number of processes and threads (nodes on one host, or tests).
 *
 * <p>Acquisition follows flannel's rules as {@link LeaseRules#plan} holds them: reuse the lease holding our PublicIP if
 * it fits the config (an unfitting one is deleted, unless it is a reservation), else the previous subnet if free and
 * fitting, else a random one of the first 100 free subnets from SubnetMin to SubnetMax. Unlike flannel, a lost race
 * cannot happen (every change runs under an exclusive lock) and reservations stay reservations.
 *
 * <p>The file format and locking are described in {@code io.overlay4j.internal.LeaseFile}. An entry that cannot be
 * read is skipped with a warning (see {@link #corruptEntries()}) and kept in the file; its subnet stays taken while
 * its expiry is readable and in the future. A lease that must not be routed ({@link LeaseRules#check}: a subnet that
 * does not fit the config, an unusable PublicIP) is skipped the same way by {@link #leases()} and the watch. A file
 * that cannot be read as a whole fails every call with
 * {@code STORE_CORRUPT} (and the watch reports it through {@link LeaseListener#onError}), so leases are never dropped
 * silently.
 *
 * <pre>{@code
 * try (LocalSubnetAllocator alloc = LocalSubnetAllocator.builder()
 *         .file(Path.of("/run/overlay4j/leases.json"))
 *         .network(NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\"}"))
 *         .build()) {
 *     Lease lease = alloc.acquire(LeaseAttributes.udp(publicIp), null);
 * }
 * }</pre>
 */
public final class LocalSubnetAllocator implements SubnetAllocator {
    private static final Logger log = LoggerFactory.getLogger(LocalSubnetAllocator.class);

    private final LeaseFile store;
    private final Duration leaseTtl;
    private final Duration pollInterval;
    private final Clock clock;
    private final ThreadFactory threadFactory;
    private final List<FileWatch> watches = new CopyOnWriteArrayList<>();
    private final AtomicInteger unreadableEntries = new AtomicInteger();
    private final AtomicInteger unfitEntries = new AtomicInteger();
    private final Set<String> warned = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    private LocalSubnetAllocator(LeaseFile store, Builder b) {
        this.store = store;
        this.leaseTtl = b.leaseTtl;
        this.pollInterval = b.pollInterval;
        this.clock = b.clock;
        this.threadFactory = b.threadFactory != null ? b.threadFactory : r -> {
            Thread t = new Thread(r, "overlay4j-local-watch");
            t.setDaemon(true);
            return t;
        };
    }

    /** A builder; {@link Builder#file(Path)} is required. */
    public static Builder builder() {
        return new Builder();
    }

    /** The canonical path of the lease file. */
    public Path file() {
        return store.path();
    }

    /**
     * The number of entries skipped at the last read by this allocator: entries that cannot be read, and leases that
     * must not be routed because they do not fit the network config or name an unusable PublicIP
     * ({@link LeaseRules#check}). Each is logged once.
     */
    public int corruptEntries() {
        return unreadableEntries.get() + unfitEntries.get();
    }

    /**
     * The network configuration stored in the file (read again on every call, as flannel does).
     *
     * @throws OverlayException {@code CONFIG_NOT_FOUND} if the file has none, {@code CONFIG_INVALID} if it is invalid
     */
    @Override
    public NetworkConfig networkConfig() {
        ensureOpen();
        return configOf(read());
    }

    @Override
    public Lease acquire(LeaseAttributes attributes, Ipv4Prefix previousSubnet) {
        requireNonNull(attributes, "attributes");
        ensureOpen();
        return update(state -> {
            Instant now = now();
            state.purgeExpired(now);
            NetworkConfig config = configOf(state);
            List<LeaseRules.Entry> entries = new ArrayList<>();
            for (Held h : state.held(now)) {
                entries.add(new LeaseRules.Entry(h.subnet(), h.lease() == null ? null : h.lease().attributes(),
                        h.lease() != null && h.lease().isReservation()));
            }
            LeaseRules.Plan plan = LeaseRules.plan(config, entries, attributes.publicIp(), previousSubnet);
            plan.notes().forEach(log::info);
            for (LeaseRules.Entry e : plan.delete()) {
                state.remove(e.subnet());
            }
            Lease lease;
            switch (plan.action()) {
                case REUSE:
                    lease = new Lease(plan.subnet(), attributes, plan.reuse().reservation() ? null : expiry(now));
                    break;
                case PREVIOUS:
                case RANDOM:
                    lease = new Lease(plan.subnet(), attributes, expiry(now));
                    log.info("acquired subnet {} for {}", plan.subnet(), attributes.publicIp().getHostAddress());
                    break;
                default:
                    throw LeaseRules.exhausted(config);
            }
            state.put(lease);
            return lease;
        });
    }

    /**
     * {@inheritDoc}
     *
     * <p>The lease's own entry is authoritative, as flanneld's unconditional renewal {@code Put} is: an entry for the
     * subnet that cannot be read, or whose PublicIP is not a usable address, is overwritten with the lease. If the
     * entry is gone (it expired or was deleted) and the subnet is still free and fits the config, it is created again
     * with a full TTL; a deleted reservation comes back as an ordinary lease. Only a readable entry of another usable
     * PublicIP, or a subnet that is gone and taken or no longer fits, is {@code LEASE_LOST}.
     */
    @Override
    public Lease renew(Lease lease) {
        requireNonNull(lease, "lease");
        ensureOpen();
        return update(state -> {
            Instant now = now();
            state.purgeExpired(now);
            Held h = state.get(lease.subnet(), now);
            LeaseAttributes attrs = lease.attributes();
            if (h != null) {
                boolean reservation = false;
                if (h.lease() == null) {
                    log.warn("the entry of our lease {} in {} is unreadable; rewriting it", lease.subnet(), file());
                } else {
                    Inet4Address holder = h.lease().attributes().publicIp();
                    if (!holder.equals(attrs.publicIp())) {
                        if (LeaseRules.isUsablePublicIp(holder)) {
                            throw new OverlayException(Kind.LEASE_LOST, "subnet " + lease.subnet()
                                    + " is now held by " + holder.getHostAddress());
                        }
                        log.warn("the entry of our lease {} in {} names PublicIP {}; rewriting it", lease.subnet(),
                                file(), holder.getHostAddress());
                    } else {
                        reservation = h.lease().isReservation();
                    }
                }
                Lease renewed = new Lease(lease.subnet(), attrs, reservation ? null : expiry(now));
                state.put(renewed);
                return renewed;
            }
            NetworkConfig config = configOf(state);
            boolean free = state.held(now).stream()
                    .noneMatch(o -> LeaseRules.blocks(config, o.subnet()) && o.subnet().overlaps(lease.subnet()));
            if (!free || !LeaseRules.fits(config, lease.subnet())) {
                throw new OverlayException(Kind.LEASE_LOST, "lease " + lease.subnet() + " is gone and the subnet "
                        + (free ? "no longer fits the network config" : "overlaps another lease"));
            }
            log.warn("lease {} had expired or was deleted; creating it again", lease.subnet());
            Lease renewed = new Lease(lease.subnet(), attrs, expiry(now));
            state.put(renewed);
            return renewed;
        });
    }

    @Override
    public void release(Lease lease) {
        requireNonNull(lease, "lease");
        ensureOpen();
        update(state -> {
            Instant now = now();
            state.purgeExpired(now);
            Held h = state.get(lease.subnet(), now);
            if (h != null && h.lease() != null && !h.lease().isReservation()
                    && h.lease().attributes().publicIp().equals(lease.attributes().publicIp())) {
                state.remove(lease.subnet());
                log.info("released lease {}", lease.subnet());
            }
            return null;
        });
    }

    /**
     * Writes a reservation: a lease without expiry that only {@code attributes.publicIp()} gets from
     * {@link #acquire}, and that acquire, renew and release never delete or convert. An existing lease of the same
     * PublicIP on exactly this subnet becomes the reservation.
     *
     * @param subnet     a subnet inside the network; to be handed out it must also lie in [SubnetMin, SubnetMax] and
     *                   have length SubnetLen
     * @param attributes the node the subnet is reserved for
     * @return the reservation
     * @throws OverlayException {@code ILLEGAL_ARGUMENT} if the subnet lies outside the network,
     *                          {@code LEASE_CONFLICT} if it overlaps a lease of another PublicIP (or another subnet)
     */
    public Lease reserve(Ipv4Prefix subnet, LeaseAttributes attributes) {
        requireNonNull(subnet, "subnet");
        requireNonNull(attributes, "attributes");
        ensureOpen();
        return update(state -> {
            Instant now = now();
            state.purgeExpired(now);
            NetworkConfig config = configOf(state);
            if (!config.network().contains(subnet)) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "cannot reserve " + subnet + " outside network "
                        + config.network());
            }
            for (Held h : state.held(now)) {
                if (!h.subnet().overlaps(subnet)) {
                    continue;
                }
                boolean same = h.subnet().equals(subnet) && h.lease() != null
                        && h.lease().attributes().publicIp().equals(attributes.publicIp());
                if (!same) {
                    throw new OverlayException(Kind.LEASE_CONFLICT, "cannot reserve " + subnet + ": it overlaps "
                            + h.subnet() + (h.lease() == null ? " (unreadable)" : " held by "
                            + h.lease().attributes().publicIp().getHostAddress()));
                }
            }
            Lease reservation = new Lease(subnet, attributes, null);
            state.put(reservation);
            log.info("reserved {} for {}", subnet, attributes.publicIp().getHostAddress());
            return reservation;
        });
    }

    @Override
    public List<Lease> leases() {
        ensureOpen();
        Instant now = now();
        List<Lease> out = new ArrayList<>();
        for (Lease l : routable(read())) {
            if (l.expiration() == null || l.expiration().isAfter(now)) {
                out.add(l);
            }
        }
        return out;
    }

    @Override
    public Watch watch(LeaseListener listener) {
        requireNonNull(listener, "listener");
        ensureOpen();
        FileWatch w = new FileWatch(listener);
        watches.add(w);
        if (closed) {
            w.close();
        } else {
            w.thread.start();
        }
        return w;
    }

    /** Stops all watches. Idempotent. Leases stay in the file until they expire. */
    @Override
    public void close() {
        closed = true;
        for (FileWatch w : watches) {
            w.close();
        }
    }

    // ---- internals ----

    private Instant now() {
        return clock.instant();
    }

    private Instant expiry(Instant now) {
        return now.plus(leaseTtl).truncatedTo(ChronoUnit.MILLIS);
    }

    private void ensureOpen() {
        if (closed) {
            throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "the allocator on " + file() + " is closed");
        }
    }

    private LeaseFile.State read() {
        return noteProblems(store.read());
    }

    private <T> T update(java.util.function.Function<LeaseFile.State, T> change) {
        return store.update(state -> change.apply(noteProblems(state)));
    }

    private LeaseFile.State noteProblems(LeaseFile.State state) {
        List<String> problems = state.problems();
        unreadableEntries.set(problems.size());
        for (String p : problems) {
            warnOnce(p, "skipping unreadable entry in {}: {}", p);
        }
        return state;
    }

    /**
     * The readable leases of the file (expired ones included) that may be routed ({@link LeaseRules#check}), ordered
     * by subnet; the others are counted and logged once each.
     */
    private List<Lease> routable(LeaseFile.State state) {
        NetworkConfig config = configOf(state);
        List<Lease> out = new ArrayList<>();
        int unfit = 0;
        for (Lease l : state.allLeases()) {
            Optional<String> problem = LeaseRules.check(config, l);
            if (problem.isPresent()) {
                unfit++;
                warnOnce(l.subnet().toSubnetKey() + "=" + l.attributes().toJson(), "skipping entry in {}: {}",
                        problem.get());
            } else {
                out.add(l);
            }
        }
        unfitEntries.set(unfit);
        out.sort((a, b) -> a.subnet().compareTo(b.subnet()));
        return out;
    }

    private void warnOnce(String what, String format, String detail) {
        if (warned.size() > 10_000) {
            warned.clear();
        }
        if (warned.add(what)) {
            log.warn(format, file(), detail);
        }
    }

    private NetworkConfig configOf(LeaseFile.State state) {
        NetworkConfig config = storedConfig(state, file());
        if (config == null) {
            throw new OverlayException(Kind.CONFIG_NOT_FOUND, file() + " holds no network config");
        }
        return config;
    }

    private static NetworkConfig storedConfig(LeaseFile.State state, Path file) {
        try {
            return state.config();
        } catch (OverlayException e) {
            throw new OverlayException(e.kind(), file + " holds an invalid network config: " + e.getMessage(), e);
        }
    }

    /** One watch: a daemon thread polling the file. */
    private final class FileWatch implements Watch {
        private final LeaseListener listener;
        private final Thread thread;
        private volatile boolean stopped;
        private Object lastKey;
        private long lastSize = -1;
        private long lastModified;
        private byte[] lastBytes;
        private List<Lease> fileLeases;
        private Map<Ipv4Prefix, Lease> known;
        private String lastError;

        FileWatch(LeaseListener listener) {
            this.listener = listener;
            this.thread = threadFactory.newThread(this::run);
        }

        private void run() {
            while (!stopped) {
                try {
                    poll();
                } catch (RuntimeException e) {
                    log.warn("lease watch on {} failed unexpectedly", file(), e);
                }
                try {
                    Thread.sleep(pollInterval.toMillis(), pollInterval.toNanosPart() % 1_000_000);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }

        private void poll() {
            try {
                if (changed()) {
                    byte[] bytes = store.readBytes();
                    if (bytes == null) {
                        throw new OverlayException(Kind.STORE_UNAVAILABLE, file() + " has disappeared");
                    }
                    if (!Arrays.equals(bytes, lastBytes)) {
                        fileLeases = routable(noteProblems(store.parse(bytes)));
                        lastBytes = bytes;
                    }
                }
                if (lastError != null) {
                    lastError = null;
                    log.info("lease watch on {} reads the file again", file());
                    deliver(listener::onResumed);
                }
            } catch (OverlayException e) {
                lastSize = -1; // read again next time
                if (!Objects.equals(lastError, e.getMessage())) { // report each episode once, not every poll
                    lastError = e.getMessage();
                    log.warn("lease watch on {}: {}", file(), e.getMessage());
                    deliverError(e);
                }
            }
            if (fileLeases == null) {
                return; // no successful read yet: no snapshot to give
            }
            Instant now = now();
            TreeMap<Ipv4Prefix, Lease> current = new TreeMap<>();
            for (Lease l : fileLeases) {
                if (l.expiration() == null || l.expiration().isAfter(now)) {
                    current.put(l.subnet(), l);
                }
            }
            if (known == null) {
                known = current;
                deliver(() -> listener.onSnapshot(Collections.unmodifiableList(new ArrayList<>(current.values()))));
                return;
            }
            List<LeaseEvent> events = new ArrayList<>();
            TreeMap<Ipv4Prefix, Boolean> subnets = new TreeMap<>();
            known.keySet().forEach(k -> subnets.put(k, true));
            current.keySet().forEach(k -> subnets.put(k, true));
            for (Ipv4Prefix s : subnets.keySet()) {
                Lease before = known.get(s);
                Lease after = current.get(s);
                if (after == null) {
                    events.add(LeaseEvent.removed(before));
                } else if (!after.equals(before)) {
                    events.add(LeaseEvent.added(after));
                }
            }
            known = current;
            if (!events.isEmpty()) {
                deliver(() -> listener.onEvents(Collections.unmodifiableList(events)));
            }
        }

        /** Cheap check: inode, size and mtime; a recently modified file is always read (coarse mtimes). */
        private boolean changed() {
            BasicFileAttributes a;
            try {
                a = Files.readAttributes(file(), BasicFileAttributes.class);
            } catch (NoSuchFileException e) {
                return true;
            } catch (IOException e) {
                throw new OverlayException(Kind.STORE_UNAVAILABLE, "cannot stat " + file() + ": " + e, e);
            }
            long modified = a.lastModifiedTime().toMillis();
            boolean same = Objects.equals(a.fileKey(), lastKey) && a.size() == lastSize && modified == lastModified
                    && System.currentTimeMillis() - modified > 2000;
            lastKey = a.fileKey();
            lastSize = a.size();
            lastModified = modified;
            return !same;
        }

        private void deliver(Runnable call) {
            if (stopped) {
                return;
            }
            try {
                call.run();
            } catch (RuntimeException e) {
                log.warn("lease listener threw; the watch on {} continues", file(), e);
            }
        }

        private void deliverError(Throwable error) {
            deliver(() -> listener.onError(error));
        }

        @Override
        public void close() {
            if (stopped) {
                return;
            }
            stopped = true;
            watches.remove(this);
            thread.interrupt();
            if (Thread.currentThread() != thread && thread.isAlive()) {
                try {
                    thread.join(1000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    /**
     * Builds a {@link LocalSubnetAllocator}. Every bad option value is an {@link OverlayException} of kind
     * {@code ILLEGAL_ARGUMENT} whose message names the option.
     */
    public static final class Builder {
        private Path file;
        private NetworkConfig network;
        private Duration leaseTtl = Duration.ofHours(24);
        private Duration pollInterval = Duration.ofMillis(100);
        private Clock clock = Clock.systemUTC();
        private ThreadFactory threadFactory;

        private Builder() {
        }

        /** Required: the lease file; created (with its directory) if missing. */
        public Builder file(Path file) {
            this.file = option("file", file);
            return this;
        }

        /**
         * The network config. Stored in the file if it has none; if the file holds a different one, {@link #build()}
         * fails. If not set, the file's config is used.
         */
        public Builder network(NetworkConfig network) {
            this.network = network;
            return this;
        }

        /** How long a lease lives unless renewed; default 24 hours, as flannel. */
        public Builder leaseTtl(Duration leaseTtl) {
            this.leaseTtl = positive("leaseTtl", leaseTtl);
            return this;
        }

        /** How often a watch looks at the file; default 100 ms. */
        public Builder pollInterval(Duration pollInterval) {
            this.pollInterval = positive("pollInterval", pollInterval);
            return this;
        }

        /** The clock for lease expiry (tests); default the system UTC clock. */
        public Builder clock(Clock clock) {
            this.clock = option("clock", clock);
            return this;
        }

        /**
         * Makes the allocator's threads (one per {@link #watch watch}). Default: daemon threads named
         * {@code overlay4j-local-watch}.
         */
        public Builder threadFactory(ThreadFactory threadFactory) {
            this.threadFactory = option("threadFactory", threadFactory);
            return this;
        }

        /**
         * Opens the file, storing the config in it if it has none.
         *
         * @throws OverlayException {@code ILLEGAL_ARGUMENT} if no file is set, {@code CONFIG_INVALID} if the file holds
         *                          a different (or invalid) config, {@code CONFIG_NOT_FOUND} if neither the file nor
         *                          the builder has one, {@code STORE_CORRUPT} if the file cannot be read,
         *                          {@code STORE_UNAVAILABLE} on I/O failure
         */
        public LocalSubnetAllocator build() {
            if (file == null) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "LocalSubnetAllocator: file is required");
            }
            LeaseFile store;
            try {
                store = new LeaseFile(file);
            } catch (IOException e) {
                throw new OverlayException(Kind.STORE_UNAVAILABLE, "cannot open lease file " + file + ": " + e, e);
            }
            store.update(state -> {
                NetworkConfig stored = storedConfig(state, store.path());
                if (stored == null) {
                    if (network == null) {
                        throw new OverlayException(Kind.CONFIG_NOT_FOUND, store.path() + " holds no network config"
                                + " and none was given");
                    }
                    state.setConfig(network);
                } else if (network != null && !stored.equals(network)) {
                    throw new OverlayException(Kind.CONFIG_INVALID, store.path() + " holds network " + stored
                            + ", not " + network);
                }
                return null;
            });
            return new LocalSubnetAllocator(store, this);
        }

        private static <T> T option(String name, T value) {
            if (value == null) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "LocalSubnetAllocator: " + name
                        + " must not be null");
            }
            return value;
        }

        private static Duration positive(String name, Duration value) {
            if (option(name, value).isNegative() || value.isZero()) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "LocalSubnetAllocator: " + name
                        + " must be positive: " + value);
            }
            return value;
        }
    }
}
