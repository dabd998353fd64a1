package io.overlay4j.examples;

import io.overlay4j.testing.Requirements;
import java.util.Arrays;
import java.util.concurrent.ThreadLocalRandom;

/** What the walk-through tests share around a {@link WalkthroughTopology}. */
final class Walkthroughs {
    private Walkthroughs() {
    }

    /** Checks what every walk-through test needs: kernel networking (root, TUN, namespaces) and {@code ping}. */
    static void requireHosts() {
        Requirements.requireKernelNetworking();
        Requirements.requireBinary("ping");
    }

    /** A namespace name prefix for one test's topology: {@code <tag><up to 4 hex digits>-}, random. */
    static String uniquePrefix(String tag) {
        return tag + Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000)) + "-";
    }

    /**
     * Closes each of {@code all} in order, skipping nulls, each even if an earlier one failed; then throws the first
     * failure, with the later ones suppressed.
     */
    static void closeAll(AutoCloseable... all) throws Exception {
        closeAll(Arrays.asList(all));
    }

    /** {@link #closeAll(AutoCloseable...)} for a collection, in its iteration order. */
    static void closeAll(Iterable<? extends AutoCloseable> all) throws Exception {
        Exception first = null;
        for (AutoCloseable c : all) {
            if (c == null) {
                continue;
            }
            try {
                c.close();
            } catch (Exception e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
