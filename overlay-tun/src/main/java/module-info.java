/**
 * overlay4j's Linux kernel bindings over JNA: TUN devices, rtnetlink links, addresses and routes, network namespaces
 * and UDP sockets with segmentation offloads.
 */
// "module": the qualified export names a module that depends on this one; "requires-automatic": JNA has only an
// Automatic-Module-Name.
@SuppressWarnings({"module", "requires-automatic"})
module io.overlay4j.tun {
    requires transitive io.overlay4j;
    requires com.sun.jna;
    requires jdk.unsupported; // sun.misc.Unsafe: raw loads from direct buffers (DirectBuffers)
    requires org.slf4j;

    exports io.overlay4j.tun;
    // libc bindings and direct-buffer access, for the data plane's checksum loops; KernelWatch, for the kernel
    // backends; not an API.
    exports io.overlay4j.tun.internal to io.overlay4j.udp, io.overlay4j.vxlan, io.overlay4j.hostgw;
}
