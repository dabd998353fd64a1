package io.overlay4j.udp.internal;

import io.overlay4j.DropReason;
import io.overlay4j.TrafficStats;
import java.util.EnumMap;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The counters of one direction of a data plane, written by exactly one thread. An increment is a plain read and a
 * release write (a lazySet: no lock, no CAS, no fence on x86); readers use acquire reads, so a reader that sees a
 * counter also sees every increment its writer made before it. A snapshot is consistent per counter, not across all
 * counters at one instant.
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
        // Bytes first: a reader that sees the packet count also sees its bytes.
        slots.setRelease(BYTES, slots.getPlain(BYTES) + bytes);
        slots.setRelease(PACKETS, slots.getPlain(PACKETS) + 1);
    }

    /** Counts {@code count} forwarded packets of {@code bytes} bytes in all. Single writer only. */
    public void packets(int count, long bytes) {
        slots.setRelease(BYTES, slots.getPlain(BYTES) + bytes);
        slots.setRelease(PACKETS, slots.getPlain(PACKETS) + count);
    }

    /** Counts one ICMP reply written to the TUN. Single writer only. */
    public void icmpSent() {
        slots.setRelease(ICMP, slots.getPlain(ICMP) + 1);
    }

    /** Counts one drop. Single writer only. */
    public void drop(DropReason reason) {
        int slot = DROPS + reason.ordinal();
        slots.setRelease(slot, slots.getPlain(slot) + 1);
    }

    /** Counts {@code count} drops for one reason. Single writer only. */
    public void drops(DropReason reason, int count) {
        int slot = DROPS + reason.ordinal();
        slots.setRelease(slot, slots.getPlain(slot) + count);
    }

    /** The forwarded packets so far. */
    public long packets() {
        return slots.getAcquire(PACKETS);
    }

    /** Their bytes. */
    public long bytes() {
        return slots.getAcquire(BYTES);
    }

    /** ICMP replies so far. */
    public long icmp() {
        return slots.getAcquire(ICMP);
    }

    /** Drops for one reason so far. */
    public long drops(DropReason reason) {
        return slots.getAcquire(DROPS + reason.ordinal());
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
