package io.overlay4j.udp.internal;

import io.overlay4j.OffloadStatus;
import io.overlay4j.PeerStats;
import io.overlay4j.TrafficStats;
import io.overlay4j.TunDevice;
import io.overlay4j.internal.AbstractNetwork;
import io.overlay4j.internal.Cleanup;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.Forwarder;
import io.overlay4j.udp.PeerTable;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the userspace data planes (the udp backend's and vxlan's userspace one) share: a TUN device, a UDP socket and
 * the {@link Forwarder} between them, whose counters, peer table and offloads the network reports, and the order in
 * which they are taken down. The subclass sets {@link #tun}, {@link #socket} and {@link #forwarder} as it opens them,
 * and supplies its routes' removal.
 */
public abstract class ForwardingNetwork extends AbstractNetwork {
    private static final Logger LOG = LoggerFactory.getLogger(ForwardingNetwork.class);

    private final boolean offloadsAsked;
    private final String underlay;
    /** The TUN device, once opened. */
    protected TunDevice tun;
    /** The data socket, once opened. */
    protected UdpSocket socket;
    /** The forwarder, once built. */
    protected Forwarder forwarder;

    /**
     * @param mtu           the TUN's MTU, as {@link #mtu()} returns it
     * @param offloadsAsked whether the offloads were asked for, as {@link #offloads()} reports it
     * @param underlay      the underlay interface's name, the data socket's device in {@link #offloads()}
     */
    protected ForwardingNetwork(int mtu, boolean offloadsAsked, String underlay) {
        super(mtu);
        this.offloadsAsked = offloadsAsked;
        this.underlay = underlay;
    }

    /** The forwarder's counters: inner packets and bytes each way, and every drop by reason. */
    @Override
    public TrafficStats stats() {
        return forwarder.stats();
    }

    /** The forwarder's per-peer counters. */
    @Override
    public List<PeerStats> peerStats() {
        return forwarder.peerStats();
    }

    /** The TUN's virtio headers and the socket's GSO and GRO ({@link Forwarder#offloads}); none once closed. */
    @Override
    public List<OffloadStatus> offloads() {
        synchronized (lock) {
            if (isClosed()) {
                return List.of();
            }
        }
        return forwarder.offloads(offloadsAsked, underlay);
    }

    /** The forwarder's peer table (tests, diagnostics). */
    public PeerTable peers() {
        return forwarder.peers();
    }

    /** The TUN's name, or {@code ?} before it is open. */
    protected final String tunName() {
        return tun == null ? "?" : tun.name();
    }

    /**
     * Stops the forwarder, deletes the routes ({@link #deleteRoutes}), closes the socket and the TUN, waits for the
     * forwarder's threads and closes the route programmer ({@link #closeRoutes}), in that order, each even if an
     * earlier step failed; whatever was not opened yet is skipped.
     *
     * @param failure the exception that caused the tear-down, or null: later failures are added to it as suppressed
     * @return the first failure if {@code failure} was null, else null
     */
    protected final Throwable tearDown(Throwable failure) {
        Throwable first = failure;
        Forwarder f = forwarder;
        if (f != null) {
            first = Cleanup.attempt(first, f::close);
        }
        first = deleteRoutes(first);
        if (socket != null) {
            first = Cleanup.attempt(first, socket::close);
        }
        if (tun != null) {
            first = Cleanup.attempt(first, tun::close);
        }
        if (f != null) {
            first = Cleanup.attempt(first, () -> {
                try {
                    if (!f.awaitTermination(5, TimeUnit.SECONDS)) {
                        LOG.warn("the forwarder threads of {} did not stop within 5 s", tunName());
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        return closeRoutes(first);
    }

    /**
     * Deletes the routes this network installed, each with {@link Cleanup#attempt}.
     *
     * @return the first failure so far
     */
    protected abstract Throwable deleteRoutes(Throwable first);

    /**
     * Closes the route programmer if this network owns it, with {@link Cleanup#attempt}.
     *
     * @return the first failure so far
     */
    protected abstract Throwable closeRoutes(Throwable first);
}
