package io.overlay4j.tun.internal;

import io.overlay4j.tun.NetlinkMonitor;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import java.io.IOException;
import java.util.Set;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How a kernel backend (vxlan's kernel data plane, host-gw) follows the kernel: a {@link NetlinkMonitor} whose
 * listener only queues work, and one thread of its own that does the work (restores, repairs, periodic checks). Both
 * threads come from the node's thread factory, so they run in the node's network namespace.
 */
public final class KernelWatch implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(KernelWatch.class);

    private final String what;
    private final ScheduledThreadPoolExecutor worker;
    private NetlinkMonitor monitor;

    private KernelWatch(String what, ThreadFactory threadFactory) {
        this.what = what;
        this.worker = new ScheduledThreadPoolExecutor(1, threadFactory);
        worker.setRemoveOnCancelPolicy(true);
        worker.prestartAllCoreThreads();
    }

    /**
     * Starts the worker thread; {@link #follow} then starts the monitor.
     *
     * @param what the worker, as the warning about a worker that does not stop names it
     */
    public static KernelWatch start(String what, ThreadFactory threadFactory) {
        return new KernelWatch(what, threadFactory);
    }

    /** The worker thread's executor; rejects work once closed. */
    public ScheduledThreadPoolExecutor worker() {
        return worker;
    }

    /** Starts the monitor; its listener runs on the monitor's thread and should only queue work on {@link #worker}. */
    public void follow(String threadName, Set<NetlinkMonitor.Group> groups, NetlinkMonitor.Listener listener,
                       ThreadFactory threadFactory) throws IOException {
        monitor = NetlinkMonitor.start(threadName, groups, listener, threadFactory);
    }

    /**
     * Takes a kernel backend's network down in the one safe order: stops {@code watch} (if it was started), so no
     * repair races the rest; runs {@code finish} (the last kernel changes: deletions, or a log line saying what stays);
     * closes {@code nl}, even if a step before failed.
     */
    public static void shutDown(KernelWatch watch, Runnable finish, NetlinkRouteProgrammer nl) {
        try {
            if (watch != null) {
                watch.close();
            }
            finish.run();
        } finally {
            nl.close();
        }
    }

    /** Stops the monitor and the worker, waiting up to 10 s for a running task. Idempotent. */
    @Override
    public void close() {
        if (monitor != null) {
            monitor.close();
        }
        worker.shutdownNow();
        try {
            if (!worker.awaitTermination(10, TimeUnit.SECONDS)) {
                LOG.warn("the {} did not stop within 10 s", what);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
