package io.overlay4j;

import static java.util.Objects.requireNonNull;

/**
 * Whether one offload of a data plane's device or socket is in use. A userspace data plane asks the kernel for its
 * offloads when it opens its devices and falls back, offload by offload, where the kernel refuses; this says how that
 * went. Kernel-only backends report none ({@link Backend.Network#offloads()}).
 *
 * @param device  what the offload belongs to: the TUN device (e.g. {@code flannel0}) for {@link Feature#TUN_VNET_HEADER},
 *                the underlay interface the data socket is bound on for the UDP offloads
 * @param feature the offload
 * @param status  whether it is in use
 */
public record OffloadStatus(String device, Feature feature, Status status) {

    public OffloadStatus {
        requireNonNull(device, "device");
        requireNonNull(feature, "feature");
        requireNonNull(status, "status");
    }

    /** An offload. */
    public enum Feature {
        /**
         * Virtio-net headers on the TUN device ({@code IFF_VNET_HDR} with TSO): reads return TCP/UDP super-packets of
         * up to 64 KiB, writes take coalesced ones.
         */
        TUN_VNET_HEADER,
        /** UDP generic segmentation offload on the data socket ({@code UDP_SEGMENT}): one send, many datagrams. */
        UDP_GSO,
        /** UDP generic receive offload on the data socket ({@code UDP_GRO}): one receive, many datagrams. */
        UDP_GRO
    }

    /** Whether an offload is in use. */
    public enum Status {
        /** Asked for and granted: in use. */
        ON,
        /** Asked for but refused by the kernel (or withdrawn after it failed): the data plane runs without it. */
        REFUSED,
        /** Not asked for (the backend runs with offloads switched off). */
        OFF
    }

    /** e.g. {@code flannel0 TUN_VNET_HEADER ON}. */
    @Override
    public String toString() {
        return device + " " + feature + " " + status;
    }
}
