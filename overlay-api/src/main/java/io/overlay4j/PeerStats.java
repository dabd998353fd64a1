package io.overlay4j;

import static java.util.Objects.requireNonNull;

import java.time.Instant;

/**
 * What a node's data plane exchanged with one peer, a snapshot of live counters. Egress counts the inner packets sent
 * to the peer (once their send succeeded), ingress the inner packets received from it and admitted (counted before
 * the TUN write; a failed write shows up as the node's {@link DropReason#TUN_WRITE_FAILED}); bytes count inner IP
 * packets, as in {@link TrafficStats}. Datagrams refused by ingress admission belong to no peer: they are only the
 * node's drops.
 *
 * <p>A peer's counters follow its subnet: they survive renewals and changes of its lease's attributes and restart only
 * when the subnet leaves the network and comes back. Only backends with a userspace data plane can count per peer;
 * kernel-only backends report none ({@link Backend.Network#peerStats()}).
 *
 * @param subnet         the peer's subnet, e.g. {@code 100.96.2.0/24}
 * @param egressPackets  inner packets sent to the peer
 * @param egressBytes    their bytes
 * @param ingressPackets inner packets received from the peer and admitted
 * @param ingressBytes   their bytes
 * @param lastSeen       when the last admitted datagram from the peer arrived (millisecond precision), or
 *                       {@code null} if none has
 */
public record PeerStats(Ipv4Prefix subnet, long egressPackets, long egressBytes, long ingressPackets,
                        long ingressBytes, Instant lastSeen) {

    public PeerStats {
        requireNonNull(subnet, "subnet");
    }

    /** The sums of both snapshots' counters and the later of their last-seen times (same subnet). */
    PeerStats plus(PeerStats other) {
        Instant seen = lastSeen == null ? other.lastSeen
                : other.lastSeen == null || lastSeen.isAfter(other.lastSeen) ? lastSeen : other.lastSeen;
        return new PeerStats(subnet, egressPackets + other.egressPackets, egressBytes + other.egressBytes,
                ingressPackets + other.ingressPackets, ingressBytes + other.ingressBytes, seen);
    }

    /** e.g. {@code 100.96.2.0/24: egress 10 pkts/1400 B, ingress 9 pkts/1260 B, last seen 2026-11-26T14:00:00Z}. */
    @Override
    public String toString() {
        return subnet + ": egress " + egressPackets + " pkts/" + egressBytes + " B, ingress " + ingressPackets
                + " pkts/" + ingressBytes + " B, last seen " + (lastSeen == null ? "never" : lastSeen);
    }
}
