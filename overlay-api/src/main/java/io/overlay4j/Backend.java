package io.overlay4j;

import java.io.IOException;
import java.net.Inet4Address;
import java.util.List;
import java.util.concurrent.ThreadFactory;

/**
 * A way of carrying overlay traffic between hosts (flannel's {@code udp}, {@code vxlan}, {@code host-gw}): the SPI
 * {@link OverlayNode} drives. A backend publishes lease attributes, sets up devices and routes for the node's own
 * subnet, and follows the peers' leases.
 */
public interface Backend {

    /** The flannel backend type this implements, lower case, e.g. {@code udp}. */
    String type();

    /**
     * Sets up the backend on this host and acquires the node's lease through {@link Context#acquireLease}.
     * Runs on the node's control thread, so devices and sockets land in the node's network namespace; the backend's
     * own threads come from {@link Context#threadFactory()}.
     *
     * @return the running network; closing it removes what it set up
     * @throws IOException on kernel errors; partial state is cleaned up before it is thrown
     */
    Network register(Context context) throws IOException;

    /** What the node gives a backend. */
    interface Context {
        /** The network configuration. */
        NetworkConfig config();

        /** The address published in the lease, where peers send traffic. */
        Inet4Address publicAddress();

        /** The underlay interface's own address (the data socket binds here). */
        Inet4Address interfaceAddress();

        /** The underlay interface's name. */
        String interfaceName();

        /** The underlay interface's MTU. */
        int interfaceMtu();

        /** Acquires (or re-acquires) the node's lease with these attributes. */
        Lease acquireLease(LeaseAttributes attributes);

        /**
         * Makes every thread the backend starts (forwarders, pollers), so that the embedding program's thread factory
         * (naming, priorities, a network namespace) reaches them. Default: daemon threads.
         */
        default ThreadFactory threadFactory() {
            return r -> {
                Thread t = new Thread(r);
                t.setDaemon(true);
                return t;
            };
        }
    }

    /** The backend running for one lease. */
    interface Network extends AutoCloseable {
        /** The node's own lease. */
        Lease lease();

        /** The MTU containers should use (written to subnet.env as {@code FLANNEL_MTU}). */
        int mtu();

        /**
         * Applies peer changes; the node never passes its own lease. ADDED is create-or-replace, REMOVED of an unknown
         * peer is ignored. Called from one thread at a time.
         */
        void peersChanged(List<LeaseEvent> events);

        /** Drops all peers and installs these (after a resync). */
        void resetPeers(List<Lease> peers);

        /**
         * The data plane's counters: a userspace data plane's own, a kernel-only backend's from its device (or all
         * zeros). Called from any thread, also after {@link #close()} (then the last values, or zeros); must not throw.
         */
        TrafficStats stats();

        /**
         * Per-peer counters, one per peer the data plane routes to, ordered by subnet; each peer's counters survive
         * peer table changes and restart only when its subnet leaves. Called from any thread; must not throw.
         * Default: none, for a backend that cannot count per peer (the kernel's devices count per device).
         */
        default List<PeerStats> peerStats() {
            return List.of();
        }

        /**
         * The offloads of this network's devices and whether the kernel granted them. Called from any thread; must
         * not throw. Default: none.
         */
        default List<OffloadStatus> offloads() {
            return List.of();
        }

        /**
         * Stops following peers and releases the backend's resources. A userspace backend (udp) stops traffic and
         * removes its device and routes; a kernel backend (vxlan, host-gw) by default leaves the kernel forwarding
         * as it is, as flanneld does, so that a restarted node takes over without interrupting flows (each offers a
         * {@code cleanUpOnClose} option). Idempotent.
         */
        @Override
        void close();
    }
}
