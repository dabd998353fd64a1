/**
 * overlay4j's userspace data plane: flannel's {@code udp} backend, which registers itself with the backend registry,
 * and the userspace VXLAN encapsulation. Reads {@code io.overlay4j.tun} transitively, so a program using this module
 * also gets {@code NetworkNamespace} and the other Linux bindings.
 */
@SuppressWarnings("module") // the qualified export names a module that depends on this one
module io.overlay4j.udp {
    requires transitive io.overlay4j;
    requires transitive io.overlay4j.tun;
    requires org.slf4j;
    requires java.management; // the JIT warm-up waits until the compiler is quiet (CompilationMXBean)

    exports io.overlay4j.udp;
    // ForwardingNetwork, which vxlan's userspace data plane shares with the udp backend; not an API.
    exports io.overlay4j.udp.internal to io.overlay4j.vxlan;

    provides io.overlay4j.BackendProvider with io.overlay4j.udp.UdpBackendProvider;
}
