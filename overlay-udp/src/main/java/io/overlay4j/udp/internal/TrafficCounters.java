package io.overlay4j.udp.internal;

import io.overlay4j.DropReason;
import io.overlay4j.TrafficStats;
import java.util.EnumMap;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The counters of one direction of a data plane, written by exactly one thread. Writes are plain read + opaque write
 * (no lock, no CAS, no fence beyond what opaque needs on the platform); readers on other threads see each counter
 * eventually and never torn. A snapshot is therefore a per-counter, not a cross-counter, consistent view.
 *
 * <p>Slots are padded on both sides so two directions' counters do not share a cache line.
 */
public final class TrafficCounters {
    private static final int PAD = 16;
    private static final int PACKETS = PAD;
    private static final int BYTES = PAD + 1;
    private static final int ICMP = PAD + 2;
    private static final int DROPS = PAD + 3;
    private static final DropReason[] REASONS = DropReason.values();

    private final AtomicLongArray slots = new AtomicLongArray(DROPS + REASONS.length + PAD);

    /** Counts one forwarded packet of {@code bytes} bytes. Single writer only. */
    public void packet(int bytes) {
        slots.setOpaque(PACKETS, slots.getPlain(PACKETS) + 1);
        slots.setOpaque(BYTES, slots.getPlain(BYTES) + bytes);
    }

    /** Counts one ICMP reply written to the TUN. Single writer only. */
    public void icmpSent() {
        slots.setOpaque(ICMP, slots.getPlain(ICMP) + 1);
    }

    /** Counts one drop. Single writer only. */
    public void drop(DropReason reason) {
        int slot = DROPS + reason.ordinal();
        slots.setOpaque(slot, slots.getPlain(slot) + 1);
    }

    /** The forwarded packets so far. */
    public long packets() {
        return slots.getOpaque(PACKETS);
    }

    /** Their bytes. */
    public long bytes() {
        return slots.getOpaque(BYTES);
    }

    /** ICMP replies so far. */
    public long icmp() {
        return slots.getOpaque(ICMP);
    }

    /** Drops for one reason so far. */
    public long drops(DropReason reason) {
        return slots.getOpaque(DROPS + reason.ordinal());
    }

    /** A snapshot combining an egress and an ingress direction. */
    public static TrafficStats snapshot(TrafficCounters egress, TrafficCounters ingress) {
        EnumMap<DropReason, Long> drops = new EnumMap<>(DropReason.class);
        for (DropReason r : REASONS) {
            drops.put(r, egress.drops(r) + ingress.drops(r));
        }
        return new TrafficStats(egress.packets(), egress.bytes(), ingress.packets(), ingress.bytes(),
                egress.icmp() + ingress.icmp(), drops);
    }
}
