package io.overlay4j.examples;

import io.overlay4j.Lease;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.NodeStats;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.PeerStats;
import io.overlay4j.udp.UdpBackend;
import java.nio.file.Path;

/**
 * The smallest useful embedding: join (or create) the overlay {@code 100.96.0.0/16} on this host through the
 * interface {@code eth0}, print the subnet we got and what happens to the node, and keep forwarding (printing its
 * stats every 10 s) until the process is stopped. Needs root (or CAP_NET_ADMIN) and {@code /dev/net/tun}. The udp backend runs with offloads (TUN TSO,
 * UDP GSO/GRO) by default; {@code UdpBackend.builder().offloads(false)} selects the plain path.
 */
public final class EmbeddingExample {
    private EmbeddingExample() {
    }

    /** {@code EmbeddingExample [interface]}. */
    public static void main(String[] args) throws Exception {
        String iface = args.length > 0 ? args[0] : "eth0";
        NetworkConfig config = NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        OverlayNode.Listener events = new OverlayNode.Listener() {
            @Override
            public void stateChanged(OverlayNode.State previous, OverlayNode.State current, OverlayException cause) {
                System.out.println("node " + previous + " -> " + current + (cause == null ? "" : ": "
                        + cause.getMessage()));
            }

            @Override
            public void subnetChanged(Lease previous, Lease current) {
                System.out.println("subnet " + current.subnet() + (previous == null ? "" : " (was "
                        + previous.subnet() + ")"));
            }

            @Override
            public void peerAdded(Lease peer) {
                System.out.println("peer " + peer.subnet() + " at " + peer.attributes().publicIp().getHostAddress());
            }

            @Override
            public void peerRemoved(Lease peer) {
                System.out.println("peer " + peer.subnet() + " gone");
            }
        };
        try (LocalSubnetAllocator allocator = LocalSubnetAllocator.builder()
                     .file(Path.of("/var/lib/overlay4j/leases.json"))
                     .network(config)
                     .build();
             OverlayNode node = OverlayNode.builder()
                     .allocator(allocator)
                     .backend(UdpBackend.builder().build())
                     .underlayInterface(iface)
                     .subnetFile(Path.of("/run/overlay4j/subnet.env"))
                     .listener(events)
                     .build()
                     .start()) {
            System.out.println("container MTU " + node.mtu());
            while (true) {
                Thread.sleep(10_000);
                NodeStats stats = node.nodeStats(); // never throws; counters, lease, store, offloads
                System.out.println(stats);
                for (PeerStats peer : stats.peers()) {
                    System.out.println("  " + peer);
                }
            }
        }
    }
}
