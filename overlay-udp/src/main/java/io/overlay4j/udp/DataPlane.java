package io.overlay4j.udp;

import io.overlay4j.Lease;
import io.overlay4j.LeaseEvent;
import io.overlay4j.TrafficStats;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** What {@link UdpBackend} needs of a running data plane: the portable {@link Forwarder} or the offload path. */
interface DataPlane extends AutoCloseable {
    /** Applies lease events to the peer table. */
    void peersChanged(List<LeaseEvent> events);

    /** Replaces all peers. */
    void resetPeers(Collection<Lease> leases);

    /** The current peer table. */
    PeerTable peers();

    /** The counters of both directions. */
    TrafficStats stats();

    /** Waits for the threads to end once the TUN device and the socket are closed. */
    boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException;

    /** Stops forwarding. */
    @Override
    void close();
}
