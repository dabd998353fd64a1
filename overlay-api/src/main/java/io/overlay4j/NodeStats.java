package io.overlay4j;

import static java.util.Objects.requireNonNull;

import java.time.Instant;
import java.util.List;

/**
 * What a node reports about itself at one moment ({@link OverlayNode#nodeStats()}): its state, its lease and when that
 * expires, whether the store answers, the data plane's counters node-wide and per peer, and its offloads. Available at
 * any time: before the start everything is zero and empty; after {@link OverlayNode#close()} the state is
 * {@link OverlayNode.State#CLOSED}, the counters keep their last values and no offload is reported. Each counter is
 * exact; they are not all read at one instant.
 *
 * @param state          the node's state
 * @param lease          the node's lease, or {@code null} while it has none (before the start)
 * @param storeReachable whether the store answers, as the node's state tells: true when {@code READY} or
 *                       {@code LEASE_LOST} (the store answered that another node holds the subnet), false when
 *                       {@code STARTING} (not joined yet, perhaps retrying because the store cannot be reached),
 *                       {@code DEGRADED} or {@code CLOSED}
 * @param traffic        the node-wide counters since the start, summed over the data planes of every subnet the node
 *                       held (a node that lost its lease and moved keeps counting up)
 * @param peers          per-peer counters, ordered by subnet; empty for a backend that cannot count per peer
 * @param offloads       the data plane's offloads; empty for a backend without any, and after close
 */
public record NodeStats(OverlayNode.State state, Lease lease, boolean storeReachable, TrafficStats traffic,
                        List<PeerStats> peers, List<OffloadStatus> offloads) {

    public NodeStats {
        requireNonNull(state, "state");
        requireNonNull(traffic, "traffic");
        peers = List.copyOf(peers);
        offloads = List.copyOf(offloads);
    }

    /** When the node's lease expires unless renewed; {@code null} without a lease or for a reservation. */
    public Instant leaseExpiration() {
        return lease == null ? null : lease.expiration();
    }

    /** e.g. {@code READY, lease 100.96.1.0/24 until ..., store reachable, egress ..., 2 peers, 3 offloads}. */
    @Override
    public String toString() {
        return state + ", lease " + (lease == null ? "none" : lease.subnet() + " until " + lease.expiration())
                + ", store " + (storeReachable ? "reachable" : "unreachable") + ", " + traffic + ", " + peers.size()
                + " peers, offloads " + offloads;
    }
}
