/**
 * flannel's {@code host-gw} backend: routes to the peers' subnets via their public addresses, registered with the
 * backend registry. Reads {@code io.overlay4j.tun} transitively, as {@code io.overlay4j.udp} does.
 */
module io.overlay4j.hostgw {
    requires transitive io.overlay4j;
    requires transitive io.overlay4j.tun;
    requires org.slf4j;

    exports io.overlay4j.hostgw;

    provides io.overlay4j.BackendProvider with io.overlay4j.hostgw.HostGwBackendProvider;
}
