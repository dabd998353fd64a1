package io.overlay4j.internal;

import io.overlay4j.OverlayException;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;

/**
 * Tear-down steps that must each run even if an earlier one failed: the first failure is kept and the later ones are
 * added to it as suppressed (the composite close of the style guide).
 */
public final class Cleanup {
    private Cleanup() {
    }

    /** One step of a tear-down. */
    @FunctionalInterface
    public interface Step {
        /** Runs the step. */
        void run() throws Exception;
    }

    /**
     * Runs {@code step}.
     *
     * @param first the failure so far, or null
     * @return {@code first}, with the step's failure added as suppressed; or the step's failure if {@code first} was
     *         null; or null if neither failed
     */
    public static Throwable attempt(Throwable first, Step step) {
        try {
            step.run();
            return first;
        } catch (Throwable t) {
            if (first == null) {
                return t;
            }
            if (first != t) {
                first.addSuppressed(t);
            }
            return first;
        }
    }

    /**
     * Throws {@code failure} if there is one: unchecked ones as they are, checked ones in an {@link OverlayException}
     * of kind {@code DEVICE} with {@code message}.
     */
    public static void rethrow(Throwable failure, String message) {
        if (failure == null) {
            return;
        }
        if (failure instanceof RuntimeException) {
            throw (RuntimeException) failure;
        }
        if (failure instanceof Error) {
            throw (Error) failure;
        }
        throw new OverlayException(OverlayException.Kind.DEVICE, message, failure);
    }

    /**
     * Runs {@code step}; a failure is counted in {@code failures} and logged as {@code "<what> failed: <exception>"}
     * instead of thrown (a kernel request whose failure a later repair or resync deals with).
     */
    public static void quietly(Logger log, AtomicLong failures, String what, Step step) {
        try {
            step.run();
        } catch (Exception e) {
            failures.incrementAndGet();
            log.warn("{} failed: {}", what, e.toString());
        }
    }
}
