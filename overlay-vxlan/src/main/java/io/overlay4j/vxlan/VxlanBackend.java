package io.overlay4j.vxlan;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Backend;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import io.overlay4j.internal.WarnOnce;
import io.overlay4j.udp.VxlanLeaseData;
import java.io.IOException;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * flannel's {@code vxlan} backend: by default the kernel's VXLAN device {@code flannel.<VNI>} carries the traffic,
 * overlay4j programming it over rtnetlink exactly as flanneld does, so overlay4j and flanneld nodes share one network;
 * or, per node, overlay4j's userspace data plane speaks the same VXLAN (see <b>the data plane</b> below).
 *
 * <p>{@link #register} on the kernel data plane (flannel-facts §4, {@code pkg/backend/vxlan} in flannel's source):
 * creates {@code flannel.<VNI>} (VNI default 1; underlay = the node's interface; local address = the public IP; the UDP port
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
 * <p><b>The data plane</b> is chosen per node with {@link Builder#dataPlane}: {@link DataPlane#KERNEL} (the default)
 * as above; {@link DataPlane#USERSPACE}, overlay4j's own TUN data plane with the {@code VxlanEncapsulator} of
 * overlay-udp, for a host whose kernel has no {@code vxlan} module or where every packet should pass through this JVM;
 * or {@link DataPlane#AUTO}, the kernel's, and the userspace one when the kernel cannot create a vxlan device at all
 * (logged once; the backend then stays on userspace). Both publish the same lease, byte for byte, so peers cannot tell
 * them apart, and both talk to kernel VXLAN peers (flanneld's or overlay4j's) and to each other.
 *
 * <p>The userspace data plane sets up as flannel's udp backend does, with vxlan's numbers: a TUN device (default
 * {@code flannel.<VNI>}, replacing a kernel vxlan device of that name left by an earlier run) with MTU = the underlay's
 * (or the config's {@code MTU}) − 50 and address {@code <subnet base>/32}, the route {@code <Network> dev <tun>}, a
 * UDP socket on the underlay address and the config's {@code Port} (0: 8472). Its VtepMAC is derived from the VNI and
 * the public address ({@link Builder#vtepMac} sets one), so a restarted node publishes the same one without any state
 * on disk. It accepts only what a kernel peer sends this VTEP (flags, VNI, destination MAC; IPv4 inside; from a
 * current lease's public address, inner source in that lease's subnet, inner destination in this node's) and answers
 * nothing on the wire: no ARP, no ICMP for refused datagrams; each refused datagram is counted by reason in
 * {@link Backend.Network#stats()}. Peers of other backend types are ignored and malformed {@code BackendData} skipped,
 * counted as by the kernel data plane. {@code DirectRouting} installs the same direct routes; {@code GBP} is refused
 * ({@code CONFIG_INVALID}), since only the kernel speaks it. Closing the network removes the TUN and its routes (a
 * userspace data plane cannot forward without its JVM; {@code cleanUpOnClose} concerns the kernel's).
 *
 * <p><b>Checksums over a virtual underlay.</b> A kernel VXLAN sender leaves the inner TCP/UDP checksum of locally
 * generated or forwarded packets for the hardware to fill in. A real NIC (or the kernel, before a NIC without checksum
 * offload) does; a veth pair, or VMs on one hypervisor with virtio checksum offload, hand the packet over with the
 * checksum still partial, which a kernel receiver accepts and a userspace receiver cannot know. Where a kernel node
 * talks to a userspace node over such an underlay, turn TX checksum offload off on the kernel node's underlay
 * interface ({@code ethtool -K eth0 tx off}); kernel-to-kernel and userspace senders need nothing.
 */
public final class VxlanBackend implements Backend {
    /** The backend type name. */
    public static final String TYPE = "vxlan";

    /**
     * The system property that makes the kernel data plane fail to create {@code flannel.<VNI>} with
     * {@code EOPNOTSUPP}, as a kernel without the vxlan module does; for tests of {@link DataPlane#AUTO} on hosts where
     * the module cannot be unloaded.
     */
    public static final String REFUSE_KERNEL_DEVICE_PROPERTY = "overlay4j.vxlan.refuseKernelDevice";

    private static final Logger LOG = LoggerFactory.getLogger(VxlanBackend.class);

    /** Which data plane carries the VXLAN traffic. */
    public enum DataPlane {
        /** The kernel's vxlan device {@code flannel.<VNI>}, programmed over rtnetlink, as flanneld does. */
        KERNEL,
        /** overlay4j's TUN data plane with userspace VXLAN encapsulation: every packet passes through this JVM. */
        USERSPACE,
        /**
         * The kernel's, and the userspace one when the kernel cannot create a vxlan device ({@code EOPNOTSUPP},
         * {@code EAFNOSUPPORT}, {@code EPROTONOSUPPORT}: no vxlan module). Other kernel errors are not fallen back
         * from.
         */
        AUTO;

        /**
         * The data plane named {@code kernel}, {@code userspace} or {@code auto} (case-insensitive), as
         * {@code --vxlan-dataplane} takes it.
         *
         * @throws IllegalArgumentException naming the accepted values
         */
        public static DataPlane parse(String name) {
            for (DataPlane d : values()) {
                if (d.name().equalsIgnoreCase(name)) {
                    return d;
                }
            }
            throw new IllegalArgumentException("unknown vxlan data plane '" + name + "' (kernel, userspace, auto)");
        }
    }

    /** A running network of either data plane. */
    interface VxlanNetwork extends Backend.Network {
        /** The data plane carrying it: {@code KERNEL} or {@code USERSPACE}. */
        DataPlane dataPlane();

        /** Peers currently programmed (kernel) or in the forwarder's peer table (userspace). */
        int peerCount();
    }

    /**
     * What the backend has done with peers, over all networks it registered.
     *
     * @param peers             peers currently programmed (kernel: neighbour, FDB entry and route, or a direct route;
     *                          userspace: in the forwarder's peer table)
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
    private volatile VxlanNetwork current;
    /** Set once AUTO found the kernel cannot create vxlan devices: later registrations go straight to userspace. */
    private volatile boolean kernelLacksVxlan;

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
     *                          non-numeric {@code Port}, {@code DirectRouting} not a boolean, ...) or for {@code GBP}
     *                          on the userspace data plane; {@code DEVICE} if the kernel refuses the device
     */
    @Override
    public Network register(Context context) throws IOException {
        VxlanConfig config = VxlanConfig.of(context.config());
        VxlanNetwork network = switch (options.dataPlane) {
            case KERNEL -> KernelVxlanNetwork.register(this, context, config);
            case USERSPACE -> UserspaceVxlanNetwork.register(this, context, config);
            case AUTO -> registerAuto(context, config);
        };
        current = network;
        return network;
    }

    private VxlanNetwork registerAuto(Context context, VxlanConfig config) throws IOException {
        if (!kernelLacksVxlan) {
            try {
                return KernelVxlanNetwork.register(this, context, config);
            } catch (KernelVxlanNetwork.NoKernelVxlanException e) {
                kernelLacksVxlan = true;
                LOG.warn("{}; using the userspace vxlan data plane instead", e.getMessage());
            }
        }
        return UserspaceVxlanNetwork.register(this, context, config);
    }

    /**
     * The vxlan data of a peer's lease, as both data planes decide it: null for a lease of another backend type
     * (counted as ignored, as flanneld ignores it) or with malformed {@code BackendData} (counted as malformed), each
     * logged through {@code warnings}; with {@code unicastOnly}, a VtepMAC no VTEP can have is malformed too.
     */
    VxlanLeaseData peerData(Lease peer, WarnOnce warnings, boolean unicastOnly) {
        LeaseAttributes a = peer.attributes();
        if (!TYPE.equals(a.backendType())) {
            ignored.incrementAndGet();
            warnings.warn("type " + peer.subnet() + " " + a.backendType(), "ignoring non-vxlan subnet {} at {}: "
                    + "type={}", peer.subnet(), a.publicIp().getHostAddress(), a.backendType());
            return null;
        }
        try {
            VxlanLeaseData data = VxlanLeaseData.parse(a.backendData());
            if (unicastOnly && !data.unicastMac()) {
                throw new IllegalArgumentException("VtepMAC " + data.vtepMac() + " is not a unicast address");
            }
            return data;
        } catch (IllegalArgumentException e) {
            malformed.incrementAndGet();
            warnings.warn("data " + peer.subnet() + " " + a.backendData(), "skipping the vxlan lease of {} at {}: {}",
                    peer.subnet(), a.publicIp().getHostAddress(), e.getMessage());
            return null;
        }
    }

    /** The network registered last, or null (tests). */
    VxlanNetwork current() {
        return current;
    }

    /** The counters, with the peer count of the network registered last. */
    public Stats stats() {
        VxlanNetwork n = current;
        return new Stats(n == null ? 0 : n.peerCount(), malformed.get(), ignored.get(), recreations.get(),
                repairs.get(), failures.get());
    }

    /**
     * The data plane of the network registered last: {@link DataPlane#KERNEL} or {@link DataPlane#USERSPACE} (what
     * {@link DataPlane#AUTO} chose), or empty before the first registration.
     */
    public Optional<DataPlane> activeDataPlane() {
        VxlanNetwork n = current;
        return n == null ? Optional.empty() : Optional.of(n.dataPlane());
    }

    @Override
    public String toString() {
        return "VxlanBackend[" + options.dataPlane + (options.cleanUpOnClose ? ", clean up on close" : "")
                + (options.dataPlane != DataPlane.KERNEL && !options.offloads ? ", no offloads]" : "]");
    }

    /** The built options. */
    record Options(DataPlane dataPlane, boolean cleanUpOnClose, Duration minBackoff, Duration maxBackoff,
                   boolean offloads, String vtepMac, String tunName, boolean admitAnySenderAddress) {
    }

    /** Builds a {@link VxlanBackend}. */
    public static final class Builder {
        private DataPlane dataPlane = DataPlane.KERNEL;
        private boolean cleanUpOnClose;
        private Duration minBackoff = Duration.ofSeconds(1);
        private Duration maxBackoff = Duration.ofSeconds(30);
        private boolean offloads = true;
        private String vtepMac;
        private String tunName;
        private boolean admitAnySenderAddress;

        private Builder() {
        }

        /** The data plane; default {@link DataPlane#KERNEL} (see the class comment for when to pick which). */
        public Builder dataPlane(DataPlane dataPlane) {
            this.dataPlane = requireNonNull(dataPlane, "dataPlane");
            return this;
        }

        /**
         * Kernel data plane: whether closing the network removes {@code flannel.<VNI>} (and with it its neighbours,
         * FDB entries and routes) and the direct routes. Default false: flanneld leaves them, so that a restart
         * neither interrupts traffic nor changes the VTEP MAC. (The userspace data plane always removes its TUN.)
         */
        public Builder cleanUpOnClose(boolean cleanUpOnClose) {
            this.cleanUpOnClose = cleanUpOnClose;
            return this;
        }

        /**
         * Kernel data plane: the backoff between attempts to set a deleted device up again or to retry failed kernel
         * requests: from {@code min}, doubling, up to {@code max}. Default 1 s to 30 s, as flanneld's.
         */
        public Builder retryBackoff(Duration min, Duration max) {
            if (min.isNegative() || min.isZero() || max.compareTo(min) < 0) {
                throw new IllegalArgumentException("backoff must be 0 < min <= max: " + min + ", " + max);
            }
            this.minBackoff = min;
            this.maxBackoff = max;
            return this;
        }

        /**
         * Userspace data plane: whether to use the offload data path (a TUN with virtio headers, UDP GSO sends and GRO
         * receives), each offload falling back on its own, the wire format unchanged; as
         * {@code UdpBackend.Builder.offloads}. Default true.
         */
        public Builder offloads(boolean offloads) {
            this.offloads = offloads;
            return this;
        }

        /**
         * Userspace data plane: the VtepMAC to publish and answer to, instead of the one derived from the VNI and the
         * public address (which is stable across restarts already). Must be a unicast MAC.
         *
         * @throws IllegalArgumentException for a malformed, multicast or all-zero MAC
         */
        public Builder vtepMac(String vtepMac) {
            VxlanLeaseData d = new VxlanLeaseData(VxlanConfig.DEFAULT_VNI, requireNonNull(vtepMac, "vtepMac"));
            if (!d.unicastMac()) {
                throw new IllegalArgumentException("a VtepMAC must be unicast and not all zeros: " + vtepMac);
            }
            this.vtepMac = d.vtepMac();
            return this;
        }

        /** Userspace data plane: the TUN device's name; default {@code flannel.<VNI>}, as the kernel's device. */
        public Builder tunName(String tunName) {
            if (requireNonNull(tunName, "tunName").isEmpty() || tunName.length() > 15 || tunName.contains("%")) {
                throw new IllegalArgumentException("TUN name must be 1..15 characters without '%': " + tunName);
            }
            this.tunName = tunName;
            return this;
        }

        /**
         * Userspace data plane: relaxes ingress admission for peers whose datagrams arrive from an address other than
         * their lease's {@code PublicIP} (behind NAT, or flanneld before v0.27.4 with {@code --public-ip} set, whose
         * device sent from the interface address): see {@code Forwarder.Builder.admitAnySenderAddress}. The VNI and
         * VtepMAC are still checked, and inner sources must lie in some lease's subnet. Default false.
         */
        public Builder admitAnySenderAddress(boolean admitAnySenderAddress) {
            this.admitAnySenderAddress = admitAnySenderAddress;
            return this;
        }

        /** Builds the backend. */
        public VxlanBackend build() {
            return new VxlanBackend(new Options(dataPlane, cleanUpOnClose, minBackoff, maxBackoff, offloads, vtepMac,
                    tunName, admitAnySenderAddress));
        }
    }
}
