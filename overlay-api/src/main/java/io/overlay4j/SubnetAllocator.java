package io.overlay4j;

import java.util.List;

/**
 * Hands out subnets of one overlay network to nodes and tells every node about the others' leases.
 *
 * <p>Implementations: {@code LocalSubnetAllocator} (one file on the host, the embedded default) and
 * {@code EtcdSubnetAllocator} (flannel's etcd layout). All methods are thread-safe and block until the store answers;
 * store failures are {@link OverlayException}s of kind {@link OverlayException.Kind#STORE_UNAVAILABLE}.
 */
public interface SubnetAllocator extends AutoCloseable {

    /**
     * Reads the network configuration, with flannel's defaults applied and validated.
     *
     * @throws OverlayException {@code CONFIG_NOT_FOUND} or {@code CONFIG_INVALID}
     */
    NetworkConfig networkConfig();

    /**
     * Acquires a lease for a node, as flannel does: reuse the lease already holding {@code attributes.publicIp()}
     * (updating its attributes), else {@code previousSubnet} if it is free and fits the configuration, else a random
     * one among the first 100 free subnets.
     *
     * @param attributes     what to publish with the lease
     * @param previousSubnet the subnet this node held before (from its subnet file), or {@code null}
     * @return the lease, valid until its expiration unless renewed
     * @throws OverlayException {@code SUBNETS_EXHAUSTED} when the network is full
     */
    Lease acquire(LeaseAttributes attributes, Ipv4Prefix previousSubnet);

    /**
     * Extends a lease we hold to a full TTL and republishes its attributes. Reservations stay reservations.
     *
     * <p>Our own key is authoritative for its value, as flanneld's unconditional renewal {@code Put} is: a value that
     * cannot be read, or that names no usable PublicIP, is overwritten (and so is any value under our own etcd lease).
     * A key that is gone is created again if the subnet is still free and fits the config.
     *
     * @return the renewed lease
     * @throws OverlayException {@code LEASE_LOST} if another node (a readable value with another usable PublicIP) now
     *                          holds the subnet, or it is gone and taken or no longer fits; {@code STORE_UNAVAILABLE}
     */
    Lease renew(Lease lease);

    /** Gives up a lease we hold. Does nothing if it is gone already; never deletes a reservation. */
    void release(Lease lease);

    /**
     * The current unexpired leases (including reservations) that may be routed, ordered by subnet. Keys and values
     * that cannot be read, and leases that {@link LeaseRules#check} refuses (a subnet that does not fit the network
     * config, an unusable PublicIP), are skipped, counted and logged once each.
     */
    List<Lease> leases();

    /**
     * Starts watching the network's leases: the listener first gets {@link LeaseListener#onSnapshot} with all current
     * leases, then {@link LeaseListener#onEvents} for each change, on a thread of the allocator's. Our own lease is
     * included; a {@link LeaseEvent.Type#REMOVED} event for it means the lease was lost. Leases are filtered as in
     * {@link #leases()}; a change to a value that cannot be read or routed changes nothing the listener knows.
     *
     * @return a handle whose {@code close()} stops the watch
     */
    Watch watch(LeaseListener listener);

    /** Closes the allocator's connections and watches. Leases stay in the store until they expire. */
    @Override
    void close();

    /** Receives lease changes from {@link #watch}. Calls are never concurrent for one watch. */
    interface LeaseListener {
        /** All leases as of the start of the watch (or of a resync). Replaces whatever was known before. */
        void onSnapshot(List<Lease> leases);

        /** Changes since the snapshot, in order. */
        void onEvents(List<LeaseEvent> events);

        /**
         * The watch hit an error it is recovering from (it keeps retrying); for logging and health. Usually an
         * {@link OverlayException} of kind {@code STORE_UNAVAILABLE}.
         */
        default void onError(Throwable error) {
        }

        /**
         * The watch follows the store again after {@link #onError}: every change from now on (and those missed, or a
         * new snapshot) will be delivered.
         */
        default void onResumed() {
        }
    }

    /** A running watch. */
    interface Watch extends AutoCloseable {
        /** Stops delivering events. Idempotent. */
        @Override
        void close();
    }
}
