package io.overlay4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.Route;
import io.overlay4j.SubnetAllocator;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import io.overlay4j.hostgw.HostGwBackend;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.VxlanLeaseData;
import io.overlay4j.vxlan.VxlanBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The flannel walk-through on the kernel backends: two hosts with a container each, a node per host, then ping both
 * ways and a TCP stream each way checked byte for byte between the containers. The vxlan pairs (two kernel nodes; a
 * kernel and a userspace node) share a real etcd (and their lease values are read back from etcd byte for byte); the
 * host-gw pair a lease file.
 */
class KernelBackendsWalkthroughTest {
    @RegisterExtension
    final EtcdServerExtension etcd = new EtcdServerExtension();

    @TempDir
    Path dir;

    private String prefix;
    private WalkthroughTopology topology;
    private SubnetAllocator allocator;
    private OverlayNode node1;
    private OverlayNode node2;

    @BeforeEach
    void setUp() {
        Walkthroughs.requireHosts();
        prefix = Walkthroughs.uniquePrefix("o4jk");
    }

    @AfterEach
    void tearDown() throws Exception {
        Walkthroughs.closeAll(node1, node2, allocator, topology);
    }

    private OverlayNode start(NetworkNamespace host, Ipv4Prefix subnet, io.overlay4j.Backend backend)
            throws Exception {
        return host.call(() -> OverlayNode.builder().allocator(allocator).backend(backend)
                .underlayInterface(WalkthroughTopology.UNDERLAY).subnetFile(dir.resolve(host.name() + ".env"))
                .preferredSubnet(subnet).build().start());
    }

    private static void awaitRoute(NetworkNamespace host, String route) throws Exception {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (WalkthroughTopology.routes(host).stream().map(Route::toString).noneMatch(route::equals)) {
            assertTrue(System.nanoTime() < deadline, "no route '" + route + "' in " + host.name() + ": "
                    + WalkthroughTopology.routes(host));
            Thread.sleep(20);
        }
    }

    private void exchange() throws Exception {
        Ping.Result ping = Ping.run(topology.c1(), WalkthroughTopology.C2_IP, 3);
        assertEquals(3, ping.received(), ping.output());
        Ping.Result back = Ping.run(topology.c2(), WalkthroughTopology.C1_IP, 3);
        assertEquals(3, back.received(), back.output());
        long size = 64L << 20;
        TcpStream.Result tcp = TcpStream.run(topology.c1(), topology.c2(), WalkthroughTopology.C2_IP, 5201, size,
                Duration.ofSeconds(60));
        assertEquals(size, tcp.bytesReceived());
        assertTrue(tcp.intact(), "stream c1 -> c2 corrupted");
        TcpStream.Result reverse = TcpStream.run(topology.c2(), topology.c1(), WalkthroughTopology.C1_IP, 5202, size,
                Duration.ofSeconds(60));
        assertEquals(size, reverse.bytesReceived());
        assertTrue(reverse.intact(), "stream c2 -> c1 corrupted");
    }

    @Test
    void vxlanOverEtcd() throws Exception {
        etcd.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}");
        topology = WalkthroughTopology.create(prefix, 1450);
        EtcdSubnetAllocator etcdAllocator = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint())
                .requestTimeout(Duration.ofSeconds(5)).build();
        allocator = etcdAllocator;
        etcdAllocator.networkConfig(); // client threads start here, in the root namespace where etcd listens
        VxlanBackend backend1 = VxlanBackend.builder().cleanUpOnClose(true).build();
        node1 = start(topology.host1(), WalkthroughTopology.SUBNET1, backend1);
        node2 = start(topology.host2(), WalkthroughTopology.SUBNET2, VxlanBackend.builder().cleanUpOnClose(true)
                .build());
        awaitRoute(topology.host1(), "100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink");
        awaitRoute(topology.host2(), "100.96.1.0/24 via 100.96.1.0 dev flannel.1 onlink");
        assertEquals(1450, node1.mtu());
        assertTrue(Files.readString(dir.resolve(topology.host1().name() + ".env")).contains("FLANNEL_MTU=1450\n"));

        // the lease as flanneld would read it from etcd
        String value = etcd.etcdctl("get", "/coreos.com/network/subnets/100.96.1.0-24", "--print-value-only").trim();
        String mac = VxlanLeaseData.parse(node1.lease().attributes().backendData()).vtepMac();
        assertEquals("{\"PublicIP\":\"10.168.0.2\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
                + "\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"" + mac + "\"}}", value);

        exchange();
        assertTrue(node1.stats().egressBytes() > 64L << 20, node1.stats().toString());
        assertEquals(1, backend1.stats().peers());
    }

    /**
     * The mixed pair: host 1 runs the kernel data plane, host 2 the userspace one, both over one etcd. Their leases
     * differ only in the MAC; each reaches the other's container both ways. Host 1's underlay veth finishes the inner
     * checksums its kernel VXLAN leaves partial, as a NIC would (see {@code VxlanBackend}).
     */
    @Test
    void vxlanMixedPairKernelAndUserspaceOverEtcd() throws Exception {
        etcd.etcdctl("put", "/coreos.com/network/config",
                "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}");
        topology = WalkthroughTopology.create(prefix, 1450);
        Requirements.requireBinary("ethtool");
        TestNamespaces.exec(List.of("ip", "netns", "exec", topology.host1().name(), "ethtool", "-K",
                WalkthroughTopology.UNDERLAY, "tx", "off"));
        EtcdSubnetAllocator etcdAllocator = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint())
                .requestTimeout(Duration.ofSeconds(5)).build();
        allocator = etcdAllocator;
        etcdAllocator.networkConfig();
        VxlanBackend kernel = VxlanBackend.builder().cleanUpOnClose(true).build();
        VxlanBackend userspace = VxlanBackend.builder().dataPlane(VxlanBackend.DataPlane.USERSPACE).build();
        node1 = start(topology.host1(), WalkthroughTopology.SUBNET1, kernel);
        node2 = start(topology.host2(), WalkthroughTopology.SUBNET2, userspace);
        awaitRoute(topology.host1(), "100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink");
        awaitRoute(topology.host2(), "100.96.0.0/16 dev flannel.1");
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (userspace.stats().peers() != 1) {
            assertTrue(System.nanoTime() < deadline, "the userspace node never saw the kernel node");
            Thread.sleep(20);
        }
        assertEquals(VxlanBackend.DataPlane.KERNEL, kernel.activeDataPlane().orElseThrow());
        assertEquals(VxlanBackend.DataPlane.USERSPACE, userspace.activeDataPlane().orElseThrow());
        assertEquals(1450, node2.mtu());
        assertTrue(Files.readString(dir.resolve(topology.host2().name() + ".env")).contains("FLANNEL_MTU=1450\n"));

        // both leases as flanneld would read them from etcd: the same shape, byte for byte
        for (OverlayNode n : new OverlayNode[] {node1, node2}) {
            String key = n.lease().subnet().toString().replace('/', '-');
            String value = etcd.etcdctl("get", "/coreos.com/network/subnets/" + key, "--print-value-only").trim();
            String mac = VxlanLeaseData.parse(n.lease().attributes().backendData()).vtepMac();
            String ip = n == node1 ? "10.168.0.2" : "10.168.0.3";
            assertEquals("{\"PublicIP\":\"" + ip + "\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
                    + "\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"" + mac + "\"}}", value);
        }

        exchange();
        assertTrue(node2.stats().ingressBytes() > 64L << 20 && node2.stats().egressBytes() > 64L << 20,
                node2.stats().toString());
        assertEquals(1, kernel.stats().peers());
    }

    @Test
    void hostGwOverALeaseFile() throws Exception {
        topology = WalkthroughTopology.create(prefix, 1500);
        allocator = LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                .network(NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"host-gw\"}}"))
                .pollInterval(Duration.ofMillis(100)).build();
        node1 = start(topology.host1(), WalkthroughTopology.SUBNET1,
                HostGwBackend.builder().cleanUpOnClose(true).build());
        node2 = start(topology.host2(), WalkthroughTopology.SUBNET2,
                HostGwBackend.builder().cleanUpOnClose(true).build());
        awaitRoute(topology.host1(), "100.96.2.0/24 via 10.168.0.3 dev eth0");
        awaitRoute(topology.host2(), "100.96.1.0/24 via 10.168.0.2 dev eth0");
        assertEquals(1500, node1.mtu());
        assertEquals(List.of("100.96.2.0/24"), node1.peers().stream().map(l -> l.subnet().toString()).toList());
        exchange();
    }
}
