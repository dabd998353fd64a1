package io.overlay4j.overlayd;

import java.util.HashMap;
import java.util.Map;
import org.slf4j.Logger;

/**
 * Warnings that may repeat every second (etcd unreachable, a config that does not parse): each distinct message is
 * logged at once, then at most once per interval with the count of repeats left out in between.
 */
final class RateLimitedLog {
    private final Logger log;
    private final long intervalNanos;
    private final Map<String, long[]> last = new HashMap<>();

    RateLimitedLog(Logger log, long intervalMillis) {
        this.log = log;
        this.intervalNanos = intervalMillis * 1_000_000L;
    }

    /** Logs {@code message} as a warning unless the same one was logged within the interval. */
    synchronized void warn(String message) {
        log(message, false);
    }

    /** As {@link #warn}, at error level. */
    synchronized void error(String message) {
        log(message, true);
    }

    private void log(String message, boolean error) {
        long now = System.nanoTime();
        long[] seen = last.get(message);
        if (seen != null && now - seen[0] < intervalNanos) {
            seen[1]++;
            return;
        }
        String text = seen != null && seen[1] > 0 ? message + " (" + seen[1] + " more like it since)" : message;
        if (error) {
            log.error(text);
        } else {
            log.warn(text);
        }
        last.put(message, new long[] {now, 0});
    }

    /** Forgets the history, so the next occurrence of any message is logged (after a recovery). */
    synchronized void reset() {
        last.clear();
    }
}
