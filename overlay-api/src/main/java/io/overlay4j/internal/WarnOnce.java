package io.overlay4j.internal;

import java.util.HashSet;
import java.util.Set;
import org.slf4j.Logger;

/**
 * Logs a warning the first time for each key and at debug level after that, so a bad lease that every resync sees
 * again is reported once, not every few seconds. Remembers at most about a thousand keys (then starts over). Not
 * thread-safe: callers hold their network's lock.
 */
public final class WarnOnce {
    private static final int MAX_KEYS = 1024;

    private final Logger log;
    private final Set<String> warned = new HashSet<>();

    /** Warnings go to {@code log}. */
    public WarnOnce(Logger log) {
        this.log = log;
    }

    /** Logs {@code format} with {@code args} as a warning if {@code key} was not warned about yet, else at debug. */
    public void warn(String key, String format, Object... args) {
        if (warned.size() > MAX_KEYS) {
            warned.clear();
        }
        if (warned.add(key)) {
            log.warn(format, args);
        } else {
            log.debug(format, args);
        }
    }
}
