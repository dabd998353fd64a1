package io.overlay4j.etcd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Backend;
import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OverlayNode;
import io.overlay4j.TrafficStats;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A node whose key is deleted from etcd (by an admin, or by expiry) re-acquires its subnet instead of exiting as
 * flanneld does. The backend is a recording stand-in; the store is a real etcd.
 */
@Timeout(60)
class EtcdNodeLeaseLossTest {
    @RegisterExtension
    final EtcdServerExtension etcd = new EtcdServerExtension();

    @Test
    void deletedKeyIsReacquiredWithTheSameSubnet() throws Exception {
        etcd.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        AtomicInteger registrations = new AtomicInteger();
        Backend backend = new Backend() {
            @Override
            public String type() {
                return "udp";
            }

            @Override
            public Network register(Context context) {
                registrations.incrementAndGet();
                Lease lease = context.acquireLease(LeaseAttributes.udp(context.publicAddress()));
                return new Network() {
                    @Override
                    public Lease lease() {
                        return lease;
                    }

                    @Override
                    public int mtu() {
                        return context.interfaceMtu() - 28;
                    }

                    @Override
                    public void peersChanged(List<LeaseEvent> events) {
                    }

                    @Override
                    public void resetPeers(List<Lease> peers) {
                    }

                    @Override
                    public TrafficStats stats() {
                        return new TrafficStats(0, 0, 0, 0, 0, new EnumMap<>(DropReason.class));
                    }

                    @Override
                    public void close() {
                    }
                };
            }
        };
        try (EtcdSubnetAllocator allocator = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint()).build();
             OverlayNode node = OverlayNode.builder().allocator(allocator).backend(backend).underlayInterface("lo")
                     .publicAddress(Ipv4Prefix.parseAddress("192.0.2.7")).subnetFile(null).build().start()) {
            Ipv4Prefix subnet = node.lease().subnet();
            String key = "/coreos.com/network/subnets/" + subnet.toSubnetKey();
            assertTrue(etcd.etcdctl("get", key).contains("192.0.2.7"));
            etcd.etcdctl("del", key);
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (!etcd.etcdctl("get", key).contains("\"PublicIP\":\"192.0.2.7\"")) {
                assertTrue(System.nanoTime() < deadline, "the node did not re-acquire its deleted lease");
                Thread.sleep(50);
            }
            assertEquals(subnet, node.lease().subnet(), "re-acquired a different subnet although it was free");
            assertEquals(1, registrations.get(), "the same subnet must not rebuild the backend");
            assertTrue(etcd.etcdctl("get", key, "-w", "json").matches("(?s).*\"lease\":[1-9].*"),
                    "the re-acquired key must carry an etcd lease");
        }
    }
}
