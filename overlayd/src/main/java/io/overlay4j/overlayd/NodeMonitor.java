package io.overlay4j.overlayd;

import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import java.time.Duration;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What overlayd reports about its node, driven by the node's events: the info lines (lease acquired and renewed, each
 * peer added and removed, etcd lost and back) and readiness ({@code /readyz}): ready once the traffic rules are in
 * and subnet.env is written ({@link #started()}) while the node is {@link OverlayNode.State#READY}; not ready while
 * etcd is unreachable ({@code DEGRADED}) or before.
 *
 * <p>When another node takes this node's subnet ({@code LEASE_LOST}; overlayd builds its node with
 * {@code moveOnLeaseLoss(false)}) the daemon must not re-address under its containers: {@code onLeaseLost} gets a
 * message and overlayd exits 1, so its supervisor restarts the host's network with the subnet it gets next.
 */
final class NodeMonitor implements OverlayNode.Listener {
    private static final Logger log = LoggerFactory.getLogger("overlayd");

    private final RateLimitedLog warnings = new RateLimitedLog(log, 30_000);
    private final Consumer<String> onLeaseLost;
    private volatile boolean started;
    private volatile OverlayNode.State state = OverlayNode.State.STARTING;
    private boolean wasReady;

    /** {@code onLeaseLost} gets a one-line message when another node holds our subnet. */
    NodeMonitor(Consumer<String> onLeaseLost) {
        this.onLeaseLost = onLeaseLost;
    }

    /** Whether {@code /readyz} says ready. */
    boolean ready() {
        return started && state == OverlayNode.State.READY;
    }

    /** The rules are in and subnet.env is written. */
    void started() {
        started = true;
        changed(null);
    }

    /** Logged when readiness flips, so the log tells why {@code /readyz} says what it says. */
    private synchronized void changed(String why) {
        boolean now = ready();
        if (now == wasReady) {
            return;
        }
        wasReady = now;
        if (now) {
            log.info("overlayd is ready");
        } else {
            log.warn("overlayd is not ready: {}", why);
        }
    }

    @Override
    public void stateChanged(OverlayNode.State previous, OverlayNode.State current, OverlayException cause) {
        state = current;
        switch (current) {
            case DEGRADED -> {
                warnings.warn("etcd is unreachable: " + (cause == null ? "" : cause.getMessage()));
                changed("etcd is unreachable");
            }
            case READY -> {
                if (previous == OverlayNode.State.DEGRADED) {
                    warnings.reset();
                    log.info("etcd is reachable again");
                }
                changed(null);
            }
            case LEASE_LOST -> {
                String message = "another node holds our subnet now (" + (cause == null ? "lease lost"
                        : cause.getMessage()) + "); exiting so that the host's network restarts on a new subnet";
                log.error(message);
                changed("the lease is lost");
                onLeaseLost.accept(message);
            }
            case CLOSED -> changed("stopping");
            default -> { }
        }
    }

    @Override
    public void subnetChanged(Lease previous, Lease current) {
        if (previous == null) {
            log.info("acquired lease: subnet {} for {}", current.subnet(),
                    current.attributes().publicIp().getHostAddress());
        } else {
            log.warn("subnet changed from {} to {}", previous.subnet(), current.subnet());
        }
    }

    @Override
    public void peerAdded(Lease peer) {
        LeaseAttributes a = peer.attributes();
        log.info("peer added: subnet {} at {} ({})", peer.subnet(), a.publicIp().getHostAddress(),
                a.backendType() == null ? "udp" : a.backendType());
    }

    @Override
    public void peerRemoved(Lease peer) {
        log.info("peer removed: subnet {} at {}", peer.subnet(), peer.attributes().publicIp().getHostAddress());
    }

    @Override
    public void leaseRenewed(Lease lease) {
        log.info("renewed lease: subnet {} until {}", lease.subnet(), lease.expiration());
    }

    @Override
    public void startRetrying(OverlayException cause, Duration delay) {
        if (cause.kind() == OverlayException.Kind.STORE_UNAVAILABLE) {
            warnings.warn("etcd is unreachable (retrying): " + cause.getMessage());
        }
    }
}
