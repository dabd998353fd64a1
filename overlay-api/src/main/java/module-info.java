/**
 * overlay4j's API: the contracts ({@code SubnetAllocator}, {@code TunDevice}, {@code Encapsulator},
 * {@code RouteProgrammer}), the {@code Backend} SPI with its registry, the value types, the control plane
 * {@code OverlayNode} and the file-backed {@code LocalSubnetAllocator}.
 *
 * <p>Backends register themselves by providing {@link io.overlay4j.BackendProvider} (a {@code provides} clause, or a
 * {@code META-INF/services} entry on the class path); {@code Backends} finds them with {@link java.util.ServiceLoader}.
 */
@SuppressWarnings("module") // the qualified export names a module that depends on this one
module io.overlay4j {
    requires com.google.common;
    requires org.slf4j;

    exports io.overlay4j;
    // Json, with which VxlanEncapsulator and the vxlan backend read BackendData as flannel does, and what the
    // backends' networks share (AbstractNetwork, Cleanup, WarnOnce); not an API.
    exports io.overlay4j.internal to io.overlay4j.udp, io.overlay4j.vxlan, io.overlay4j.hostgw;

    uses io.overlay4j.BackendProvider;
}
