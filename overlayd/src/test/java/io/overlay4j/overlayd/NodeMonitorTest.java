package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.LeaseEvent;
import io.overlay4j.OverlayException;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The monitor between a node and a real etcd: readiness follows the start, an etcd outage (seen by the probe) and its
 * end, the own lease lost and re-acquired; a re-acquired lease in another subnet is reported.
 */
class NodeMonitorTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";

    @RegisterExtension
    final EtcdServerExtension etcd = new EtcdServerExtension();

    private EtcdSubnetAllocator raw;
    private final List<String> subnetChanges = new CopyOnWriteArrayList<>();
    private NodeMonitor monitor;
    private SubnetAllocator allocator;

    @BeforeEach
    void setUp() {
        etcd.etcdctl("put", "/coreos.com/network/config", CONFIG);
        raw = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint()).requestTimeout(Duration.ofSeconds(2)).build();
        monitor = new NodeMonitor(subnetChanges::add);
        allocator = monitor.wrap(raw);
    }

    @AfterEach
    void tearDown() {
        raw.close();
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, what);
            Thread.sleep(50);
        }
    }

    @Test
    void readinessFollowsStartOutageAndLeaseLoss() throws Exception {
        LeaseAttributes attrs = LeaseAttributes.udp(Ipv4Prefix.parseAddress("10.168.0.2"));
        Lease lease = allocator.acquire(attrs, Ipv4Prefix.parse("100.96.1.0/24"));
        assertEquals(Ipv4Prefix.parse("100.96.1.0/24"), monitor.subnet());
        assertFalse(monitor.ready(), "not ready before the rules and subnet.env");
        monitor.started();
        assertTrue(monitor.ready());
        lease = allocator.renew(lease);

        List<List<LeaseEvent>> seen = new CopyOnWriteArrayList<>();
        try (SubnetAllocator.Watch w = allocator.watch(new SubnetAllocator.LeaseListener() {
            @Override
            public void onSnapshot(List<Lease> leases) {
            }

            @Override
            public void onEvents(List<LeaseEvent> events) {
                seen.add(events);
            }
        })) {
            // etcd down: the probe says so; back up: ready again.
            etcd.stop();
            monitor.probe(raw);
            assertFalse(monitor.ready());
            assertThrows(OverlayException.class, () -> allocator.networkConfig());
            etcd.start();
            monitor.probe(raw);
            assertTrue(monitor.ready());

            // Our key deleted: the watch's REMOVED makes us not ready until the lease is re-acquired.
            etcd.etcdctl("del", "/coreos.com/network/subnets/100.96.1.0-24");
            await(() -> !monitor.ready(), "the lost lease made us not ready");
            allocator.acquire(attrs, Ipv4Prefix.parse("100.96.1.0/24"));
            assertTrue(monitor.ready());
            assertTrue(subnetChanges.isEmpty());

            // Another node takes our subnet while it is gone: the re-acquired lease is elsewhere, and that is said.
            etcd.etcdctl("del", "/coreos.com/network/subnets/100.96.1.0-24");
            await(() -> !monitor.ready(), "lost again");
            raw.acquire(LeaseAttributes.udp(Ipv4Prefix.parseAddress("10.168.0.9")), Ipv4Prefix.parse("100.96.1.0/24"));
            Lease moved = allocator.acquire(attrs, Ipv4Prefix.parse("100.96.1.0/24"));
            assertFalse(moved.subnet().equals(Ipv4Prefix.parse("100.96.1.0/24")));
            assertEquals(1, subnetChanges.size());
            assertTrue(subnetChanges.get(0).startsWith("the subnet changed from 100.96.1.0/24 to " + moved.subnet()),
                    subnetChanges.get(0));
            assertFalse(seen.isEmpty(), "the node's own listener still gets the events");
        }
    }
}
