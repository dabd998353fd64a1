package io.overlay4j.vxlan;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Backend;
import io.overlay4j.OverlayException;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

/**
 * flannel's {@code vxlan} backend: the kernel's VXLAN device {@code flannel.<VNI>} carries the traffic, overlay4j
 * programs it over rtnetlink exactly as flanneld does, so overlay4j and flanneld nodes share one network.
 *
 * <p>{@link #register} (flannel-facts §4, {@code pkg/backend/vxlan} in flannel's source): creates
 * {@code flannel.<VNI>} (VNI default 1; underlay = the node's interface; local address = the public IP; the UDP port
 * only if {@code Port} > 0, else the kernel's 8472; learning as configured, default off; GBP when set; MTU = the
 * underlay's MTU, or the config's {@code MTU}, minus 50; a random locally administered MAC) or reuses the one there if
 * it is compatible, keeping its MAC (VNI, underlay, local address, group, l2miss, port and GBP must agree, else it is
 * replaced); publishes the lease {@code {"PublicIP":"…","PublicIPv6":null,"BackendType":"vxlan",
 * "BackendData":{"VNI":1,"VtepMAC":"…"}}}; gives the device {@code <subnet base>/32}, removing its other addresses in
 * the network, and sets it up. For every peer whose lease is of type vxlan it installs, in this order, a permanent
 * neighbour (subnet base → VtepMAC), an FDB entry (VtepMAC → PublicIP, {@code self}) and the route
 * {@code <subnet> via <subnet base> dev flannel.<VNI> onlink}, removing what it made if a later step fails; with
 * {@code DirectRouting}, a peer whose PublicIP the kernel reaches without a gateway gets {@code <subnet> via
 * <PublicIP>} instead. A removed lease removes its entries. Leases of other types are ignored (as flanneld does); a
 * vxlan lease whose {@code BackendData} is malformed is skipped, counted ({@link Stats#malformedLeases()}) and logged
 * once, and the other peers keep working.
 *
 * <p>Beyond flanneld: a deleted or downed {@code flannel.<VNI>} is noticed at once (a {@code NetlinkMonitor}), and
 * recreated with the same MAC (so the published lease stays true) with a backoff from 1 s to 30 s, and every peer is
 * programmed again; a neighbour, FDB entry or route of a peer deleted by hand comes back; a resync (the first peer
 * list, or after the store lost events) also removes entries on the device left by peers that are gone.
 *
 * <p><b>Closing</b> follows flanneld by default: {@link Backend.Network#close()} stops following peers but leaves the
 * device, its neighbours, FDB entries and routes in place, so traffic keeps flowing while the node restarts, and the
 * restarted node reuses the device and so keeps its MAC (peers need not learn a new one). Set
 * {@link Builder#cleanUpOnClose(boolean)} to remove the device and the direct routes instead (tests and demos).
 *
 * <p>The data plane is chosen with {@link Builder#dataPlane}: for now the kernel's ({@link DataPlane#KERNEL}); a
 * userspace data plane on overlay4j's TUN forwarder will be another choice of the same builder.
 */
public final class VxlanBackend implements Backend {
    /** The backend type name. */
    public static final String TYPE = "vxlan";

    /** Which data plane carries the VXLAN traffic. */
    public enum DataPlane {
        /** The kernel's vxlan device {@code flannel.<VNI>}, programmed over rtnetlink, as flanneld does. */
        KERNEL
    }

    /**
     * What the backend has done with peers, over all networks it registered.
     *
     * @param peers             peers currently programmed (neighbour, FDB entry and route, or a direct route)
     * @param malformedLeases   vxlan leases skipped because their {@code BackendData} is malformed (bad MAC, missing
     *                          VNI, ...), counted per lease event
     * @param ignoredLeases     leases of another backend type ignored, counted per lease event
     * @param deviceRecreations times {@code flannel.<VNI>} was found deleted, down or altered and set up again
     * @param repairs           peer entries put back after they vanished from the kernel
     * @param failures          kernel requests that failed (each retried later with backoff)
     */
    public record Stats(int peers, long malformedLeases, long ignoredLeases, long deviceRecreations, long repairs,
                        long failures) {
    }

    final Options options;
    final AtomicLong malformed = new AtomicLong();
    final AtomicLong ignored = new AtomicLong();
    final AtomicLong recreations = new AtomicLong();
    final AtomicLong repairs = new AtomicLong();
    final AtomicLong failures = new AtomicLong();
    private volatile KernelVxlanNetwork current;

    private VxlanBackend(Options options) {
        this.options = options;
    }

    /** A builder; every option has a default (kernel data plane, flanneld's close behaviour). */
    public static Builder builder() {
        return new Builder();
    }

    /** {@code vxlan}. */
    @Override
    public String type() {
        return TYPE;
    }

    /**
     * {@inheritDoc}
     *
     * @throws OverlayException {@code CONFIG_INVALID} naming the field for a bad vxlan option (VNI out of range,
     *                          non-numeric {@code Port}, {@code DirectRouting} not a boolean, ...); {@code DEVICE} if
     *                          the kernel refuses the device
     */
    @Override
    public Network register(Context context) throws IOException {
        VxlanConfig config = VxlanConfig.of(context.config());
        switch (options.dataPlane) {
            case KERNEL -> {
                KernelVxlanNetwork network = KernelVxlanNetwork.register(this, context, config);
                current = network;
                return network;
            }
            default -> throw new IllegalStateException("unknown data plane " + options.dataPlane);
        }
    }

    /** The counters, with the peer count of the network registered last. */
    public Stats stats() {
        KernelVxlanNetwork n = current;
        return new Stats(n == null ? 0 : n.peerCount(), malformed.get(), ignored.get(), recreations.get(),
                repairs.get(), failures.get());
    }

    @Override
    public String toString() {
        return "VxlanBackend[" + options.dataPlane + (options.cleanUpOnClose ? ", clean up on close]" : "]");
    }

    /** The built options. */
    record Options(DataPlane dataPlane, boolean cleanUpOnClose, Duration minBackoff, Duration maxBackoff) {
    }

    /** Builds a {@link VxlanBackend}. */
    public static final class Builder {
        private DataPlane dataPlane = DataPlane.KERNEL;
        private boolean cleanUpOnClose;
        private Duration minBackoff = Duration.ofSeconds(1);
        private Duration maxBackoff = Duration.ofSeconds(30);

        private Builder() {
        }

        /** The data plane; default {@link DataPlane#KERNEL}. */
        public Builder dataPlane(DataPlane dataPlane) {
            this.dataPlane = requireNonNull(dataPlane, "dataPlane");
            return this;
        }

        /**
         * Whether closing the network removes {@code flannel.<VNI>} (and with it its neighbours, FDB entries and
         * routes) and the direct routes. Default false: flanneld leaves them, so that a restart neither interrupts
         * traffic nor changes the VTEP MAC.
         */
        public Builder cleanUpOnClose(boolean cleanUpOnClose) {
            this.cleanUpOnClose = cleanUpOnClose;
            return this;
        }

        /**
         * The backoff between attempts to set a deleted device up again or to retry failed kernel requests: from
         * {@code min}, doubling, up to {@code max}. Default 1 s to 30 s, as flanneld's.
         */
        public Builder retryBackoff(Duration min, Duration max) {
            if (min.isNegative() || min.isZero() || max.compareTo(min) < 0) {
                throw new IllegalArgumentException("backoff must be 0 < min <= max: " + min + ", " + max);
            }
            this.minBackoff = min;
            this.maxBackoff = max;
            return this;
        }

        /** Builds the backend. */
        public VxlanBackend build() {
            return new VxlanBackend(new Options(dataPlane, cleanUpOnClose, minBackoff, maxBackoff));
        }
    }
}
