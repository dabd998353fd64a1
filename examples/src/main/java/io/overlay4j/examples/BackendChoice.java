package io.overlay4j.examples;

import io.overlay4j.Backend;
import io.overlay4j.hostgw.HostGwBackend;
import io.overlay4j.udp.UdpBackend;
import io.overlay4j.vxlan.VxlanBackend;
import java.util.Locale;

/**
 * The backends the demo and the benchmark host can run, built so that closing a node removes what it made (the demo
 * and the harness clean up after themselves; flanneld's kernel backends would leave their state in place).
 */
enum BackendChoice {
    /** flannel's udp backend, overlay4j's userspace data plane: 28 bytes of IPv4 + UDP per packet. */
    UDP("udp", 28),
    /**
     * flannel's vxlan backend, in the kernel or (with {@code --vxlan-dataplane=userspace}) on overlay4j's TUN data
     * plane: 50 bytes (outer IPv4, UDP, VXLAN, inner Ethernet).
     */
    VXLAN("vxlan", 50),
    /** flannel's host-gw backend: plain routes, nothing added. */
    HOST_GW("host-gw", 0);

    final String type;
    final int overhead;

    BackendChoice(String type, int overhead) {
        this.type = type;
        this.overhead = overhead;
    }

    /** The choice named {@code udp}, {@code vxlan} or {@code host-gw}. */
    static BackendChoice parse(String name) {
        for (BackendChoice c : values()) {
            if (c.type.equals(name.toLowerCase(Locale.ROOT))) {
                return c;
            }
        }
        throw new IllegalArgumentException("unknown backend '" + name + "' (udp, vxlan, host-gw)");
    }

    /** The network config of the walk-through's range with this backend. */
    String config(String network) {
        return "{\"Network\":\"" + network + "\",\"Backend\":{\"Type\":\"" + type + "\"}}";
    }

    /** The containers' MTU on an underlay of {@code underlayMtu}: what the backend writes as FLANNEL_MTU. */
    int containerMtu(int underlayMtu) {
        return underlayMtu - overhead;
    }

    /**
     * The vxlan data plane named by {@code --vxlan-dataplane}: {@code kernel}, {@code userspace} or {@code auto}.
     *
     * @throws IllegalArgumentException naming the accepted values
     */
    static VxlanBackend.DataPlane vxlanDataPlane(String name) {
        return VxlanBackend.DataPlane.parse(name == null ? "" : name);
    }

    /**
     * Checks the data-plane options against this backend: {@code --vxlan-dataplane} belongs to vxlan, and
     * {@code --offloads} to a userspace data plane (udp, or vxlan on userspace or auto).
     *
     * @throws IllegalArgumentException saying which option does not fit
     */
    void check(boolean offloadsGiven, VxlanBackend.DataPlane dataPlane) {
        if (dataPlane != null && this != VXLAN) {
            throw new IllegalArgumentException("--vxlan-dataplane is an option of the vxlan backend");
        }
        if (offloadsGiven && !(this == UDP || (this == VXLAN && dataPlane != null
                && dataPlane != VxlanBackend.DataPlane.KERNEL))) {
            throw new IllegalArgumentException("--offloads is an option of the userspace data planes (udp, "
                    + "vxlan with --vxlan-dataplane=userspace)");
        }
    }

    /**
     * A backend that removes its devices and routes when its node closes.
     *
     * @param offloads  for the userspace data planes: the offload data path, or the plain one
     * @param dataPlane for vxlan: the data plane, null for the kernel's
     */
    Backend create(boolean offloads, VxlanBackend.DataPlane dataPlane) {
        return switch (this) {
            case UDP -> UdpBackend.builder().offloads(offloads).build();
            case VXLAN -> VxlanBackend.builder().cleanUpOnClose(true).offloads(offloads)
                    .dataPlane(dataPlane == null ? VxlanBackend.DataPlane.KERNEL : dataPlane).build();
            case HOST_GW -> HostGwBackend.builder().cleanUpOnClose(true).build();
        };
    }

    /** How the demo names the backend and its data plane, e.g. {@code vxlan backend, userspace data plane}. */
    String describe(VxlanBackend.DataPlane dataPlane) {
        return type + " backend" + (this == VXLAN && dataPlane != null && dataPlane != VxlanBackend.DataPlane.KERNEL
                ? ", " + dataPlane.name().toLowerCase(Locale.ROOT) + " data plane" : "");
    }
}
