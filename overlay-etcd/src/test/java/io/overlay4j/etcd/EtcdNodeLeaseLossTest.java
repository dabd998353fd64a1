package io.overlay4j.etcd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Backend;
import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.TrafficStats;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A node's own key in a real etcd: deleted (by an admin, or by expiry) it is re-created with the same subnet instead
 * of the node exiting as flanneld does; overwritten with a corrupt value it is rewritten at renewal and the node does
 * not move (issue 12, finding 4). The backend is a recording stand-in; the store is a real etcd.
 */
@Timeout(60)
class EtcdNodeLeaseLossTest {
    private static final String PUBLIC_IP = "192.0.2.7";

    @RegisterExtension
    final EtcdServerExtension etcd = new EtcdServerExtension();

    @Test
    void deletedKeyIsReacquiredWithTheSameSubnet() throws Exception {
        etcd.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        CountingBackend backend = new CountingBackend();
        try (EtcdSubnetAllocator allocator = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint()).build();
             OverlayNode node = node(allocator, backend, null)) {
            Ipv4Prefix subnet = node.lease().subnet();
            String key = "/coreos.com/network/subnets/" + subnet.toSubnetKey();
            assertTrue(etcd.etcdctl("get", key).contains(PUBLIC_IP));
            etcd.etcdctl("del", key);
            awaitValue(key, "\"PublicIP\":\"" + PUBLIC_IP + "\"", "the node did not re-acquire its deleted lease");
            assertEquals(subnet, node.lease().subnet(), "re-acquired a different subnet although it was free");
            assertEquals(1, backend.registrations.get(), "the same subnet must not rebuild the backend");
            assertTrue(etcd.etcdctl("get", key, "-w", "json").matches("(?s).*\"lease\":[1-9].*"),
                    "the re-acquired key must carry an etcd lease");
        }
    }

    @Test
    void aCorruptValueInItsOwnKeyDoesNotMoveTheNode() throws Exception {
        etcd.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
        CountingBackend backend = new CountingBackend();
        List<String> events = new CopyOnWriteArrayList<>();
        OverlayNode.Listener listener = new OverlayNode.Listener() {
            @Override
            public void stateChanged(OverlayNode.State previous, OverlayNode.State current, OverlayException c) {
                events.add(previous + "->" + current);
            }

            @Override
            public void subnetChanged(Lease previous, Lease current) {
                events.add("subnet " + current.subnet());
            }

            @Override
            public void leaseRenewed(Lease lease) {
                events.add("renewed");
            }
        };
        // A 4 s etcd lease renews at half-life: every 2 s, as flanneld's hourly renewal but faster.
        try (EtcdSubnetAllocator allocator = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint())
                .leaseTtl(Duration.ofSeconds(4)).build();
             OverlayNode node = node(allocator, backend, listener)) {
            Ipv4Prefix subnet = node.lease().subnet();
            String key = "/coreos.com/network/subnets/" + subnet.toSubnetKey();
            String ours = "{\"PublicIP\":\"" + PUBLIC_IP + "\",\"PublicIPv6\":null}";
            // The value is replaced under the key's own etcd lease (as finding 4 did), then without any lease.
            for (String[] corrupt : new String[][] {{"--ignore-lease", "garbage"}, {"--ignore-lease", "{}"},
                    {null, "{\"PublicIP\":\"0.0.0.0\"}"}, {null, "[1,"}}) {
                if (corrupt[0] != null) {
                    etcd.etcdctl("put", corrupt[0], key, corrupt[1]);
                } else {
                    etcd.etcdctl("put", key, corrupt[1]);
                }
                awaitValue(key, ours, "the node did not rewrite its key after " + corrupt[1]);
            }
            assertEquals(subnet, node.lease().subnet());
            assertEquals(1, backend.registrations.get(), "never rebuilt");
            assertEquals(OverlayNode.State.READY, node.state());
            assertEquals(List.of("subnet " + subnet, "STARTING->READY"), events.subList(0, 2));
            assertTrue(events.stream().skip(2).allMatch("renewed"::equals), events.toString());
            assertTrue(etcd.etcdctl("get", key, "-w", "json").matches("(?s).*\"lease\":[1-9].*"),
                    "the rewritten key carries an etcd lease");
        }
    }

    private static OverlayNode node(EtcdSubnetAllocator allocator, Backend backend, OverlayNode.Listener listener) {
        OverlayNode.Builder b = OverlayNode.builder().allocator(allocator).backend(backend).underlayInterface("lo")
                .publicAddress(Ipv4Prefix.parseAddress(PUBLIC_IP)).retryInterval(Duration.ofMillis(200));
        if (listener != null) {
            b.listener(listener);
        }
        return b.build().start();
    }

    private void awaitValue(String key, String value, String failure) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (!etcd.etcdctl("get", key).contains(value)) {
            assertTrue(System.nanoTime() < deadline, failure);
            Thread.sleep(50);
        }
    }

    /** A backend that only counts registrations. */
    private static final class CountingBackend implements Backend {
        final AtomicInteger registrations = new AtomicInteger();

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
    }
}
