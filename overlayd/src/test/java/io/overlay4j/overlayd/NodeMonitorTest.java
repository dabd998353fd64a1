package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.OverlayNode;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.UdpBackend;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The monitor listening to a real node (udp backend in a namespace, a real etcd): not ready until the daemon says it
 * started, then ready; not ready while etcd is down and ready again after; another node's claim on the subnet reported
 * (overlayd exits on it).
 */
class NodeMonitorTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";

    @RegisterExtension
    final EtcdServerExtension etcd = new EtcdServerExtension();

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces("o4jm");

    private EtcdSubnetAllocator allocator;
    private OverlayNode node;
    private final List<String> lost = new CopyOnWriteArrayList<>();

    @BeforeEach
    void setUp() {
        etcd.etcdctl("put", "/coreos.com/network/config", CONFIG);
        allocator = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint()).requestTimeout(Duration.ofSeconds(2))
                .build();
        allocator.networkConfig(); // its client threads start here, in the root namespace where etcd listens
    }

    @AfterEach
    void tearDown() {
        if (node != null) {
            node.close();
        }
        allocator.close();
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, what);
            Thread.sleep(50);
        }
    }

    @Test
    void readinessFollowsTheNode() throws Exception {
        NetworkNamespace ns = namespaces.createWithLoopback();
        namespaces.ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1");
        namespaces.ip(ns, "addr", "add", "10.168.0.2/24", "dev", "eth0");
        namespaces.ip(ns, "link", "set", "eth1", "up");
        namespaces.ip(ns, "link", "set", "eth0", "up");
        NodeMonitor monitor = new NodeMonitor(lost::add);
        node = ns.call(() -> OverlayNode.builder().allocator(allocator).backend(UdpBackend.builder().build())
                .underlayInterface("eth0").moveOnLeaseLoss(false).retryInterval(Duration.ofMillis(200))
                .preferredSubnet(Ipv4Prefix.parse("100.96.1.0/24")).listener(monitor).build().start());
        assertFalse(monitor.ready(), "not ready before the rules and subnet.env");
        monitor.started();
        assertTrue(monitor.ready());

        etcd.stop();
        await(() -> !monitor.ready(), "etcd down: not ready");
        assertEquals(OverlayNode.State.DEGRADED, node.state());
        etcd.start();
        await(monitor::ready, "etcd back: ready");

        // Another host's claim on our subnet (a usable address outside the network, no etcd lease of ours).
        etcd.etcdctl("put", "/coreos.com/network/subnets/100.96.1.0-24",
                "{\"PublicIP\":\"10.168.0.99\",\"PublicIPv6\":null}");
        await(() -> !lost.isEmpty(), "the lost lease reported");
        assertFalse(monitor.ready());
        assertTrue(lost.get(0).startsWith("another node holds our subnet now (subnet 100.96.1.0/24 is now held by "
                + "10.168.0.99)"), lost.get(0));
        assertEquals(OverlayNode.State.LEASE_LOST, node.state());
    }
}
