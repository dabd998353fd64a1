package io.overlay4j;

import static com.google.common.base.Preconditions.checkArgument;
import static java.util.Objects.requireNonNull;

import io.overlay4j.OverlayException.Kind;
import io.overlay4j.internal.LeaseFile;
import io.overlay4j.internal.LeaseFile.Held;
import io.overlay4j.internal.Subnets;
import java.io.IOException;
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
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The embedded {@link SubnetAllocator}: all leases of one network in a single JSON file on the host, shared safely by
 * any number of allocators in any number of processes and threads (nodes on one host, or tests).
 *
 * <p>Acquisition follows flannel (flannel-facts §2.4–2.5): reuse the lease holding our PublicIP if it fits the config
 * (an unfitting one is deleted, unless it is a reservation), else the previous subnet if free and fitting, else a
 * random one of the first 100 free subnets from SubnetMin to SubnetMax. Unlike flannel, a lost race cannot happen
 * (every change runs under an exclusive lock) and reservations stay reservations.
 *
 * <p>The file format and locking are described in {@code io.overlay4j.internal.LeaseFile}. An entry that cannot be
 * read is skipped with a warning (see {@link #corruptEntries()}) and kept in the file; its subnet stays taken while
 * its expiry is readable and in the future. A file that cannot be read as a whole fails every call with
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
    private final List<FileWatch> watches = new CopyOnWriteArrayList<>();
    private final AtomicInteger corruptEntries = new AtomicInteger();
    private final Set<String> warned = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    private LocalSubnetAllocator(LeaseFile store, Duration leaseTtl, Duration pollInterval, Clock clock) {
        this.store = store;
        this.leaseTtl = leaseTtl;
        this.pollInterval = pollInterval;
        this.clock = clock;
    }

    /** A builder; {@link Builder#file(Path)} is required. */
    public static Builder builder() {
        return new Builder();
    }

    /** The canonical path of the lease file. */
    public Path file() {
        return store.path();
    }

    /** The number of entries in the file that could not be read, as of the last read by this allocator. */
    public int corruptEntries() {
        return corruptEntries.get();
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
            for (Held h : state.held(now)) {
                if (h.lease() == null || !h.lease().attributes().publicIp().equals(attributes.publicIp())) {
                    continue;
                }
                if (compatible(config, h.subnet())) {
                    Lease lease = new Lease(h.subnet(), attributes, h.lease().isReservation() ? null : expiry(now));
                    state.put(lease);
                    log.info("reusing lease {} of {}", h.subnet(), attributes.publicIp().getHostAddress());
                    return lease;
                }
                if (h.lease().isReservation()) {
                    log.warn("reservation {} for {} does not fit the network config {}, leaving it alone",
                            h.subnet(), attributes.publicIp().getHostAddress(), config);
                } else {
                    log.info("found lease {} for {}, but not compatible with the network config, deleting it",
                            h.subnet(), attributes.publicIp().getHostAddress());
                    state.remove(h.subnet());
                }
            }
            List<Held> held = state.held(now);
            if (previousSubnet != null) {
                if (!compatible(config, previousSubnet)) {
                    log.info("previous subnet {} is not compatible with the network config, ignoring",
                            previousSubnet);
                } else if (held.stream().noneMatch(h -> h.subnet().overlaps(previousSubnet))) {
                    Lease lease = new Lease(previousSubnet, attributes, expiry(now));
                    state.put(lease);
                    log.info("acquired previous subnet {}", previousSubnet);
                    return lease;
                } else {
                    log.info("previous subnet {} is taken, allocating another", previousSubnet);
                }
            }
            Lease lease = new Lease(allocate(config, held), attributes, expiry(now));
            state.put(lease);
            log.info("acquired subnet {} for {}", lease.subnet(), attributes.publicIp().getHostAddress());
            return lease;
        });
    }

    /**
     * {@inheritDoc}
     *
     * <p>If the lease is gone (it expired or was deleted) and its subnet is still free and fits the config, it is
     * created again with a full TTL, as flannel's unconditional renewal {@code Put} does; a deleted reservation comes
     * back as an ordinary lease. If another PublicIP holds it, or it no longer fits, this throws {@code LEASE_LOST}.
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
                if (h.lease() == null) {
                    throw new OverlayException(Kind.LEASE_LOST, "lease " + lease.subnet() + " in " + file()
                            + " is unreadable");
                }
                if (!h.lease().attributes().publicIp().equals(attrs.publicIp())) {
                    throw new OverlayException(Kind.LEASE_LOST, "subnet " + lease.subnet() + " is now held by "
                            + h.lease().attributes().publicIp().getHostAddress());
                }
                Lease renewed = new Lease(lease.subnet(), attrs, h.lease().isReservation() ? null : expiry(now));
                state.put(renewed);
                return renewed;
            }
            NetworkConfig config = configOf(state);
            boolean free = state.held(now).stream().noneMatch(o -> o.subnet().overlaps(lease.subnet()));
            if (!free || !compatible(config, lease.subnet())) {
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
        return visible(read(), now());
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
        corruptEntries.set(problems.size());
        for (String p : problems) {
            if (warned.size() > 10_000) {
                warned.clear();
            }
            if (warned.add(p)) {
                log.warn("skipping unreadable entry in {}: {}", file(), p);
            }
        }
        return state;
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

    private static List<Lease> visible(LeaseFile.State state, Instant now) {
        List<Lease> out = new ArrayList<>();
        for (Held h : state.held(now)) {
            if (h.lease() != null) {
                out.add(h.lease());
            }
        }
        out.sort((a, b) -> a.subnet().compareTo(b.subnet()));
        return out;
    }

    private static boolean compatible(NetworkConfig config, Ipv4Prefix subnet) {
        return Subnets.compatible(config, subnet);
    }

    /** Random among the first 100 free subnets from SubnetMin to SubnetMax; free means overlapping no entry. */
    static Ipv4Prefix allocate(NetworkConfig config, List<Held> held) {
        return Subnets.allocate(config, subnets(held));
    }

    /** The first (up to) 100 free subnets from SubnetMin to SubnetMax in ascending order. */
    static List<Ipv4Prefix> freeCandidates(NetworkConfig config, List<Held> held) {
        return Subnets.freeCandidates(config, subnets(held));
    }

    private static List<Ipv4Prefix> subnets(List<Held> held) {
        List<Ipv4Prefix> out = new ArrayList<>(held.size());
        for (Held h : held) {
            out.add(h.subnet());
        }
        return out;
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
            this.thread = new Thread(this::run, "overlay4j-local-watch");
            this.thread.setDaemon(true);
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
                        fileLeases = noteProblems(store.parse(bytes)).allLeases();
                        lastBytes = bytes;
                    }
                }
                lastError = null;
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

    /** Builds a {@link LocalSubnetAllocator}. */
    public static final class Builder {
        private Path file;
        private NetworkConfig network;
        private Duration leaseTtl = Duration.ofHours(24);
        private Duration pollInterval = Duration.ofMillis(100);
        private Clock clock = Clock.systemUTC();

        private Builder() {
        }

        /** Required: the lease file; created (with its directory) if missing. */
        public Builder file(Path file) {
            this.file = requireNonNull(file, "file");
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
            this.leaseTtl = requireNonNull(leaseTtl, "leaseTtl");
            return this;
        }

        /** How often a watch looks at the file; default 100 ms. */
        public Builder pollInterval(Duration pollInterval) {
            this.pollInterval = requireNonNull(pollInterval, "pollInterval");
            return this;
        }

        /** The clock for lease expiry (tests); default the system UTC clock. */
        public Builder clock(Clock clock) {
            this.clock = requireNonNull(clock, "clock");
            return this;
        }

        /**
         * Opens the file, storing the config in it if it has none.
         *
         * @throws OverlayException {@code CONFIG_INVALID} if the file holds a different (or invalid) config,
         *                          {@code CONFIG_NOT_FOUND} if neither the file nor the builder has one,
         *                          {@code STORE_CORRUPT} if the file cannot be read, {@code STORE_UNAVAILABLE} on
         *                          I/O failure
         */
        public LocalSubnetAllocator build() {
            checkArgument(file != null, "file is required");
            checkArgument(!leaseTtl.isNegative() && !leaseTtl.isZero(), "leaseTtl must be positive: %s", leaseTtl);
            checkArgument(!pollInterval.isNegative() && !pollInterval.isZero(),
                    "pollInterval must be positive: %s", pollInterval);
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
            return new LocalSubnetAllocator(store, leaseTtl, pollInterval, clock);
        }
    }
}
