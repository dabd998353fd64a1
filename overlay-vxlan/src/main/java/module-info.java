/**
 * flannel's {@code vxlan} backend on the Linux kernel's VXLAN device {@code flannel.<VNI>}, registered with the
 * backend registry. Reads {@code io.overlay4j.tun} transitively, as {@code io.overlay4j.udp} does.
 */
module io.overlay4j.vxlan {
    requires transitive io.overlay4j;
    requires transitive io.overlay4j.tun;
    requires org.slf4j;

    exports io.overlay4j.vxlan;

    provides io.overlay4j.BackendProvider with io.overlay4j.vxlan.VxlanBackendProvider;
}
