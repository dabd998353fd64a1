package io.overlay4j.udp.internal;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;

/**
 * An error handler that logs at most one warning per interval and counts what it left out, so a data-plane loop that
 * hits the same error for every packet cannot flood the log. Thread-safe; allocation happens only when a warning is
 * actually logged.
 */
public final class RateLimitedErrorLogger implements Consumer<Throwable> {
    private final Logger log;
    private final String what;
    private final long intervalNanos;
    private final AtomicLong nextLogNanos;
    private final AtomicLong suppressed = new AtomicLong();

    /**
     * @param log      where to log
     * @param what     a short name of the source, e.g. {@code "forwarder flannel0"}
     * @param interval the least time between two warnings
     */
    public RateLimitedErrorLogger(Logger log, String what, long interval, TimeUnit unit) {
        this.log = log;
        this.what = what;
        this.intervalNanos = unit.toNanos(interval);
        this.nextLogNanos = new AtomicLong(System.nanoTime());
    }

    @Override
    public void accept(Throwable error) {
        long now = System.nanoTime();
        long next = nextLogNanos.get();
        if (now - next < 0 || !nextLogNanos.compareAndSet(next, now + intervalNanos)) {
            suppressed.incrementAndGet();
            return;
        }
        long left = suppressed.getAndSet(0);
        if (left == 0) {
            log.warn("{}: data plane error", what, error);
        } else {
            log.warn("{}: data plane error ({} more suppressed since the last warning)", what, left, error);
        }
    }

    /** Errors not logged since the last warning. */
    public long suppressed() {
        return suppressed.get();
    }
}
