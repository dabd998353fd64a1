package io.overlay4j.bench.fuzz;

import io.overlay4j.DropReason;
import java.util.Collections;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;

/**
 * What a {@link DatagramFuzzer} run sent: datagrams per case, and so what the receiving node must have counted.
 *
 * @param encapsulation the wire format
 * @param seed          the seed that reproduces the run
 * @param sent          datagrams sent per case (only cases that apply; zero counts included)
 * @param bytes         UDP payload bytes sent
 * @param sendErrors    datagrams whose send failed (not in {@code sent})
 * @param seconds       how long the run took
 */
public record FuzzResult(Encapsulation encapsulation, long seed, Map<FuzzCase, Long> sent, long bytes,
                         long sendErrors, double seconds) {

    public FuzzResult {
        sent = Collections.unmodifiableMap(new EnumMap<>(sent));
    }

    /** All datagrams sent. */
    public long datagrams() {
        long n = 0;
        for (long v : sent.values()) {
            n += v;
        }
        return n;
    }

    /** Datagrams sent of one case. */
    public long sent(FuzzCase c) {
        return sent.getOrDefault(c, 0L);
    }

    /** The drops the receiving node must count per reason (every reason present). */
    public Map<DropReason, Long> expectedDrops() {
        Map<DropReason, Long> m = new EnumMap<>(DropReason.class);
        for (DropReason r : DropReason.values()) {
            m.put(r, 0L);
        }
        for (Map.Entry<FuzzCase, Long> e : sent.entrySet()) {
            DropReason r = e.getKey().expected(encapsulation);
            if (r != null) {
                m.merge(r, e.getValue(), Long::sum);
            }
        }
        return m;
    }

    /** The drops the node must count under one reason. */
    public long expectedDrops(DropReason reason) {
        return expectedDrops().get(reason);
    }

    /** The datagrams the node must drop, whatever the reason. */
    public long expectedDropsTotal() {
        long n = 0;
        for (Map.Entry<FuzzCase, Long> e : sent.entrySet()) {
            if (e.getKey().expected(encapsulation) != null) {
                n += e.getValue();
            }
        }
        return n;
    }

    /** The datagrams the node must admit (write to its TUN). */
    public long expectedAdmitted() {
        return datagrams() - expectedDropsTotal();
    }

    /** The admitted datagrams that reach a socket at their inner destination ({@link FuzzCase#delivered()}). */
    public long expectedDelivered() {
        long n = 0;
        for (Map.Entry<FuzzCase, Long> e : sent.entrySet()) {
            if (e.getKey().delivered()) {
                n += e.getValue();
            }
        }
        return n;
    }

    /** Datagrams per second. */
    public double rate() {
        return seconds > 0 ? datagrams() / seconds : 0;
    }

    /** One line per case: name, datagrams sent, the verdict the node must reach; then totals. */
    public String table() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%-28s %10s  %s%n", "case", "sent", "verdict at the node"));
        for (Map.Entry<FuzzCase, Long> e : sent.entrySet()) {
            FuzzCase c = e.getKey();
            DropReason r = c.expected(encapsulation);
            String verdict = r != null ? "drop " + r : c.delivered() ? "admit, delivered" : "admit, host kernel drops";
            sb.append(String.format(Locale.ROOT, "%-28s %10d  %s%n", c, e.getValue(), verdict));
        }
        sb.append(String.format(Locale.ROOT, "%-28s %10d  in %.1f s (%.0f/s), %d bytes, %d send errors%n", "total",
                datagrams(), seconds, rate(), bytes, sendErrors));
        sb.append("expected drops:");
        for (Map.Entry<DropReason, Long> e : expectedDrops().entrySet()) {
            if (e.getValue() != 0) {
                sb.append(' ').append(e.getKey()).append('=').append(e.getValue());
            }
        }
        sb.append(String.format(Locale.ROOT, "; admitted %d (delivered %d)", expectedAdmitted(), expectedDelivered()));
        return sb.toString();
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "fuzz %s seed %d: %d datagrams in %.1f s (%.0f/s), %d send errors, "
                        + "expected drops %d, admitted %d", encapsulation.label(), seed, datagrams(), seconds, rate(),
                sendErrors, expectedDropsTotal(), expectedAdmitted());
    }
}
