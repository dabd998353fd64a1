package io.overlay4j.examples;

import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.udp.UdpBackend;
import java.nio.file.Path;

/**
 * The smallest useful embedding: join (or create) the overlay {@code 100.96.0.0/16} on this host through the
 * interface {@code eth0}, print the subnet we got, and keep forwarding until the process is stopped. Needs root (or
 * CAP_NET_ADMIN) and {@code /dev/net/tun}. The udp backend runs with offloads (TUN TSO, UDP GSO/GRO) by default;
 * {@code UdpBackend.builder().offloads(false)} selects the plain path.
 */
public final class EmbeddingExample {
    private EmbeddingExample() {
    }

    /** {@code EmbeddingExample [interface]}. */
    public static void main(String[] args) throws Exception {
        String iface = args.length > 0 ? args[0] : "eth0";
        NetworkConfig config = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        try (LocalSubnetAllocator allocator = LocalSubnetAllocator.builder()
                     .file(Path.of("/var/lib/overlay4j/leases.json"))
                     .network(config)
                     .build();
             OverlayNode node = OverlayNode.builder()
                     .allocator(allocator)
                     .backend(UdpBackend.builder().build())
                     .underlayInterface(iface)
                     .build()
                     .start()) {
            System.out.println("subnet " + node.lease().subnet() + ", container MTU " + node.mtu());
            Thread.currentThread().join();
        }
    }
}
