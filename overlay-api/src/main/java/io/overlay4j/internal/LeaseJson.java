package io.overlay4j.internal;

import io.overlay4j.LeaseAttributes;

/** Reads and writes flannel's lease JSON. */
public final class LeaseJson {
    private LeaseJson() {
    }

    /** flannel's compact JSON for the attributes. */
    public static String write(LeaseAttributes a) {
        throw new UnsupportedOperationException("TODO");
    }

    /** Parses flannel's lease JSON. */
    public static LeaseAttributes read(String json) {
        throw new UnsupportedOperationException("TODO");
    }
}
