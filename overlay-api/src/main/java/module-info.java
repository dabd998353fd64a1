/**
 * overlay4j's API: the contracts ({@code SubnetAllocator}, {@code TunDevice}, {@code Encapsulator},
 * {@code RouteProgrammer}), the {@code Backend} SPI with its registry, the value types, the control plane
 * {@code OverlayNode} and the file-backed {@code LocalSubnetAllocator}.
 *
 * <p>Backends register themselves by providing {@link io.overlay4j.BackendProvider} (a {@code provides} clause, or a
 * {@code META-INF/services} entry on the class path); {@code Backends} finds them with {@link java.util.ServiceLoader}.
 */
module io.overlay4j {
    requires com.google.common;
    requires org.slf4j;

    exports io.overlay4j;

    uses io.overlay4j.BackendProvider;
}
