/**
 * flannel's {@code vxlan} backend, registered with the backend registry: on the Linux kernel's VXLAN device
 * {@code flannel.<VNI>}, or in userspace on a TUN device with {@code io.overlay4j.udp}'s data plane. Reads
 * {@code io.overlay4j.tun} transitively, as {@code io.overlay4j.udp} does.
 */
module io.overlay4j.vxlan {
    requires transitive io.overlay4j;
    requires transitive io.overlay4j.tun;
    requires io.overlay4j.udp; // the userspace data plane and VxlanLeaseData, not part of this module's API
    requires org.slf4j;

    exports io.overlay4j.vxlan;

    provides io.overlay4j.BackendProvider with io.overlay4j.vxlan.VxlanBackendProvider;
}
