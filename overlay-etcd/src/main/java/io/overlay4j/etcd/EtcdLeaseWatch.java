package io.overlay4j.etcd;

import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.common.exception.CompactedException;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchEvent;
import io.etcd.jetcd.watch.WatchResponse;
import io.overlay4j.Lease;
import io.overlay4j.LeaseEvent;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.LeaseCodec.Entry;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One watch of {@code <prefix>/subnets} (flannel-facts §2.9, without its quirks): a snapshot at revision R, then one
 * long-lived etcd watch from R+1. After an error it resumes from the last revision seen + 1, backing off from 100 ms
 * to 5 s; if etcd compacted past that revision it re-lists and delivers a fresh snapshot (which also carries attribute
 * changes made meanwhile). A key or value that cannot be read or routed changes nothing the listener knows, so a
 * poisoned key never withdraws other leases.
 *
 * <p>Everything (etcd callbacks, retries, listener calls) runs on the watch's own thread, so its state needs no locks
 * and the listener is never called concurrently.
 */
final class EtcdLeaseWatch implements SubnetAllocator.Watch {
    private static final Logger log = LoggerFactory.getLogger(EtcdSubnetAllocator.class);
    private static final long BACKOFF_MIN_MS = 100;
    private static final long BACKOFF_MAX_MS = 5000;

    private final EtcdClient etcd;
    private final LeaseCodec codec;
    private final Supplier<NetworkConfig> config;
    private final SubnetAllocator.LeaseListener listener;
    private final Runnable onClose;
    private final ScheduledThreadPoolExecutor thread;
    private final Map<String, Lease> known = new TreeMap<>();
    private volatile boolean stopped;
    private volatile Thread worker;
    private NetworkConfig network;
    private Watch.Watcher watcher;
    private int generation;
    private long nextRevision;
    private long backoffMs = BACKOFF_MIN_MS;
    private boolean failing;

    /**
     * @param config  reads the network config (at every re-list), which decides what may be routed
     * @param threads makes the watch's thread
     * @param onClose called once when the watch is closed
     */
    EtcdLeaseWatch(EtcdClient etcd, LeaseCodec codec, Supplier<NetworkConfig> config,
                   SubnetAllocator.LeaseListener listener, ThreadFactory threads, Runnable onClose) {
        this.etcd = etcd;
        this.codec = codec;
        this.config = config;
        this.listener = listener;
        this.onClose = onClose;
        this.thread = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = threads.newThread(r);
            worker = t;
            return t;
        });
        this.thread.setExecuteExistingDelayedTasksAfterShutdownPolicy(false); // close() skips pending retries
        this.thread.setRemoveOnCancelPolicy(true);
    }

    /** Starts the watch's thread from the allocator's home thread (so it inherits its namespace), then the watch. */
    void start() {
        etcd.startOnHome(thread::prestartAllCoreThreads);
        submit(this::resync);
    }

    /** Full re-list: a snapshot to the listener, then an etcd watch from the listing's revision + 1. */
    private void resync() {
        if (stopped) {
            return;
        }
        closeWatcher();
        EtcdClient.Listing listing;
        try {
            network = config.get();
            listing = etcd.list(true);
        } catch (OverlayException e) {
            failed(e, this::resync);
            return;
        }
        known.clear();
        for (Entry e : listing.entries()) {
            codec.routable(network, e).ifPresent(l -> known.put(e.key(), l));
        }
        List<Lease> snapshot = new ArrayList<>(known.values());
        snapshot.sort((a, b) -> a.subnet().compareTo(b.subnet()));
        nextRevision = listing.revision() + 1;
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
        Watch.Listener l = Watch.listener(
                r -> submit(() -> onResponse(g, r)),
                t -> submit(() -> onWatchError(g, t)),
                () -> submit(() -> onStreamEnded(g)));
        try {
            watcher = etcd.watch(codec.subnetsPrefix(), option, l);
        } catch (RuntimeException e) {
            failed(etcd.unavailable("watch " + codec.subnetsPrefix() + ": " + e.getMessage(), e), this::openWatcher);
        }
    }

    private void onResponse(int g, WatchResponse r) {
        if (stopped || g != generation) {
            return;
        }
        backoffMs = BACKOFF_MIN_MS;
        if (failing) {
            failing = false;
            log.info("lease watch on {} follows etcd again from revision {}", codec.subnetsPrefix(), nextRevision);
            deliver(listener::onResumed);
        }
        List<LeaseEvent> events = new ArrayList<>();
        for (WatchEvent ev : r.getEvents()) {
            KeyValue k = ev.getKeyValue();
            nextRevision = Math.max(nextRevision, k.getModRevision() + 1);
            String key = EtcdClient.text(k.getKey());
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
            Entry e = codec.decode(key, EtcdClient.text(k.getValue()), k.getLease(), k.getModRevision(),
                    expirationOf(k.getLease()));
            Optional<Lease> lease = e == null ? Optional.empty() : codec.routable(network, e);
            if (lease.isEmpty()) {
                continue; // logged and counted; whatever we knew for the key stays (no mass withdrawal)
            }
            known.put(key, lease.get());
            events.add(LeaseEvent.added(lease.get()));
        }
        if (!events.isEmpty()) {
            deliver(() -> listener.onEvents(Collections.unmodifiableList(events)));
        }
    }

    /** The expiration of an event's etcd lease; if the TTL cannot be read, "now" (the next event corrects it). */
    private Instant expirationOf(long leaseId) {
        if (leaseId == 0) {
            return null;
        }
        try {
            return etcd.expirationOf(leaseId);
        } catch (OverlayException ex) {
            log.debug("watch: {}", ex.getMessage());
            return etcd.now();
        }
    }

    private void onWatchError(int g, Throwable t) {
        if (stopped || g != generation) {
            return;
        }
        closeWatcher();
        if (t instanceof CompactedException || (t.getMessage() != null && t.getMessage().contains("compacted"))) {
            long rev = t instanceof CompactedException ? ((CompactedException) t).getCompactedRevision() : -1;
            log.info("lease watch on {} fell behind compaction (revision {}); re-listing", codec.subnetsPrefix(), rev);
            resync();
            return;
        }
        failed(etcd.unavailable("watch " + codec.subnetsPrefix() + " from revision " + nextRevision + ": "
                + t.getMessage(), t), this::openWatcher);
    }

    /** jetcd ends a watcher without an error when we close it (stale generation) or the server ends it. */
    private void onStreamEnded(int g) {
        if (stopped || g != generation) {
            return;
        }
        closeWatcher();
        failed(etcd.unavailable("watch " + codec.subnetsPrefix() + " ended by the server", null), this::openWatcher);
    }

    /** Tells the listener, then tries {@code retry} again after the backoff (100 ms doubling to 5 s). */
    private void failed(OverlayException e, Runnable retry) {
        log.warn("lease watch: {} (retrying in {} ms)", e.getMessage(), backoffMs);
        failing = true;
        deliver(() -> listener.onError(e));
        if (stopped) {
            return;
        }
        try {
            thread.schedule(retry, backoffMs, TimeUnit.MILLISECONDS);
        } catch (RejectedExecutionException ignored) {
            return; // closed meanwhile
        }
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    }

    private void closeWatcher() {
        generation++;
        Watch.Watcher w = watcher;
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
                    log.warn("lease watch on {} failed unexpectedly", codec.subnetsPrefix(), e);
                }
            });
        } catch (RejectedExecutionException ignored) {
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
            log.warn("lease listener threw; the watch on {} continues", codec.subnetsPrefix(), e);
        }
    }

    @Override
    public void close() {
        if (stopped) {
            return;
        }
        stopped = true;
        onClose.run();
        try {
            thread.execute(this::closeWatcher);
        } catch (RejectedExecutionException ignored) {
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
