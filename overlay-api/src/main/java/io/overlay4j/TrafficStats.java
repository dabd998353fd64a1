package io.overlay4j;

import java.util.Collections;
import java.util.EnumMap;
import java.util.Map;

/**
 * A snapshot of a data plane's counters. Egress is TUN → network, ingress is network → TUN; bytes count inner IP
 * packets.
 *
 * @param egressPackets  inner packets read from the TUN and sent to a peer
 * @param egressBytes    their bytes
 * @param ingressPackets inner packets received from peers and written to the TUN
 * @param ingressBytes   their bytes
 * @param icmpSent       ICMP destination-unreachable messages written back into the TUN
 * @param drops          dropped packets per reason; every reason is present
 */
public record TrafficStats(long egressPackets, long egressBytes, long ingressPackets, long ingressBytes,
                           long icmpSent, Map<DropReason, Long> drops) {

    public TrafficStats {
        EnumMap<DropReason, Long> copy = new EnumMap<>(DropReason.class);
        for (DropReason r : DropReason.values()) {
            copy.put(r, drops.getOrDefault(r, 0L));
        }
        drops = Collections.unmodifiableMap(copy);
    }

    /** All zeros. */
    static TrafficStats zero() {
        return new TrafficStats(0, 0, 0, 0, 0, Map.of());
    }

    /** The sums of both snapshots' counters. */
    TrafficStats plus(TrafficStats other) {
        EnumMap<DropReason, Long> sum = new EnumMap<>(DropReason.class);
        for (DropReason r : DropReason.values()) {
            sum.put(r, drops(r) + other.drops(r));
        }
        return new TrafficStats(egressPackets + other.egressPackets, egressBytes + other.egressBytes,
                ingressPackets + other.ingressPackets, ingressBytes + other.ingressBytes, icmpSent + other.icmpSent,
                sum);
    }

    /** The drops for one reason. */
    public long drops(DropReason reason) {
        return drops.get(reason);
    }

    /** All drops. */
    public long totalDrops() {
        long n = 0;
        for (long d : drops.values()) {
            n += d;
        }
        return n;
    }

    /** One line, e.g. {@code egress 10 pkts/1400 B, ingress 9 pkts/1260 B, icmp 0, drops 1 {NO_ROUTE=1}}. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append("egress ").append(egressPackets).append(" pkts/").append(egressBytes).append(" B, ingress ")
                .append(ingressPackets).append(" pkts/").append(ingressBytes).append(" B, icmp ").append(icmpSent)
                .append(", drops ").append(totalDrops());
        String sep = " {";
        for (Map.Entry<DropReason, Long> e : drops.entrySet()) {
            if (e.getValue() != 0) {
                sb.append(sep).append(e.getKey()).append('=').append(e.getValue());
                sep = ", ";
            }
        }
        if (!sep.equals(" {")) {
            sb.append('}');
        }
        return sb.toString();
    }
}
