package com.example.consumer;

import io.overlay4j.OverlayNode;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.tun.NetworkNamespace;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A program that embeds overlay4j through its public API only: an etcd-backed node whose backend (udp) comes from the
 * network's configuration, found through the backend registry.
 */
public final class ConsumerApp {
    private ConsumerApp() {
    }

    /**
     * Starts a node in the named network namespace, on the underlay interface {@code iface} there, that leases its
     * subnet from {@code allocator} and writes flannel's subnet file to {@code subnetFile}.
     */
    public static OverlayNode join(SubnetAllocator allocator, String namespace, String iface, Path subnetFile)
            throws Exception {
        try (NetworkNamespace ns = NetworkNamespace.open(namespace)) {
            // Built and started inside the namespace: the TUN device, sockets and the node's threads live there.
            return ns.call(() -> OverlayNode.builder()
                    .allocator(allocator)
                    .underlayInterface(iface)
                    .subnetFile(subnetFile)
                    .build()
                    .start());
        }
    }

    /** {@code ConsumerApp <etcd endpoint> <network namespace> <interface>}: joins, prints the lease, leaves. */
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: ConsumerApp <etcd endpoint> <network namespace> <interface>");
            System.exit(2);
        }
        Path subnetFile = Files.createTempFile("consumer-subnet", ".env");
        try (EtcdSubnetAllocator allocator = EtcdSubnetAllocator.builder().endpoints(args[0]).build()) {
            try (OverlayNode node = join(allocator, args[1], args[2], subnetFile)) {
                System.out.println("subnet " + node.lease().subnet() + ", mtu " + node.mtu());
                System.out.print(Files.readString(subnetFile));
            }
        } finally {
            Files.deleteIfExists(subnetFile);
        }
    }
}
