package io.overlay4j.hostgw;

import static io.overlay4j.tun.testing.TestNodes.await;
import static io.overlay4j.tun.testing.TestNodes.quietly;
import static io.overlay4j.tun.testing.TestNodes.subnet;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.Route;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.tun.testing.TestNodes;
import io.overlay4j.tun.testing.TestUnderlay;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The host-gw backend on real hosts (namespaces on one L2 switch, a shared lease file): the routes compared with what
 * flannel's {@code route_network.go} installs, traffic, peers leaving, conflicting routes, deleted routes restored
 * through the netlink monitor (the periodic check is set to an hour here, so only the monitor can restore them).
 */
class HostGwBackendKernelTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"host-gw\"}}";

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces("o4jhg");

    @TempDir
    Path dir;

    private TestUnderlay lan;
    private TestNodes nodes;

    @BeforeEach
    void setUp() throws IOException {
        nodes = TestNodes.create(namespaces, 3, dir, "ping");
        lan = nodes.lan();
        nodes.network(CONFIG);
    }

    @AfterEach
    void tearDown() {
        if (nodes != null) {
            nodes.close();
        }
    }

    private static HostGwBackend backend() {
        return HostGwBackend.builder().cleanUpOnClose(true).checkInterval(Duration.ofHours(1)).build();
    }

    /** flannel's host-gw route for a peer: {@code <subnet> via <PublicIP> dev <iface>}. */
    private static String route(int peer) {
        return subnet(peer) + " via " + TestUnderlay.address(peer).getHostAddress() + " dev eth0";
    }

    private static Set<String> overlayRoutes(NetlinkRouteProgrammer nl) throws IOException {
        return nl.routes().stream().filter(r -> r.destination().toString().startsWith("100.96."))
                .map(Route::toString).collect(Collectors.toCollection(TreeSet::new));
    }

    private static boolean routesAre(NetlinkRouteProgrammer nl, String... routes) {
        return quietly(() -> overlayRoutes(nl).equals(new TreeSet<>(List.of(routes))));
    }

    /** Pings host {@code to}'s docker0-like address from host {@code from}, through the host-gw route. */
    private void ping(int from, int to) throws IOException {
        String out = lan.exec(from, "ping", "-c", "2", "-i", "0.2", "-W", "2", "100.96." + to + ".1");
        assertTrue(out.contains(" 0% packet loss"), out);
    }

    /** Gives every host a docker0-like address in its subnet, so there is something to reach behind the route. */
    private void bridges(int... hosts) throws IOException {
        for (int h : hosts) {
            lan.ip(h, "link", "add", "docker0", "type", "bridge");
            lan.ip(h, "addr", "add", "100.96." + h + ".1/24", "dev", "docker0");
            lan.ip(h, "link", "set", "docker0", "up");
        }
    }

    @Test
    void routesAreFlannelsAndCarryTraffic() throws Exception {
        bridges(1, 2, 3);
        HostGwBackend b1 = backend();
        nodes.start(1, b1);
        nodes.start(2, backend());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        NetlinkRouteProgrammer h2 = nodes.netlink(2);
        await("routes both ways", () -> routesAre(h1, "100.96.1.0/24 dev docker0 proto kernel scope link src "
                + "100.96.1.1", route(2)) && routesAre(h2, "100.96.2.0/24 dev docker0 proto kernel scope link src "
                + "100.96.2.1", route(1)));
        assertTrue(lan.ip(1, "route").lines().anyMatch(l -> l.trim().equals("100.96.2.0/24 via 10.168.0.3 dev eth0")),
                lan.ip(1, "route"));
        assertEquals("unicast 100.96.2.0/24 via 10.168.0.3 dev eth0 proto boot scope global",
                lan.ip(1, "-d", "route", "show", "100.96.2.0/24").trim());

        Lease lease = nodes.get(1).lease();
        assertEquals("{\"PublicIP\":\"10.168.0.2\",\"PublicIPv6\":null,\"BackendType\":\"host-gw\"}",
                lease.attributes().toJson());
        assertEquals(1500, nodes.get(1).mtu(), "FLANNEL_MTU is the interface's MTU");
        assertTrue(Files.readAllLines(dir.resolve("host1.env")).contains("FLANNEL_MTU=1500"));
        ping(1, 2);
        ping(2, 1);

        // a third host joins and leaves
        nodes.start(3, backend());
        await("host1 routes host3", () -> quietly(() -> overlayRoutes(h1).contains(route(3))));
        ping(3, 1);
        OverlayNode n3 = nodes.remove(3);
        Lease l3 = n3.lease();
        n3.close();
        nodes.allocator().release(l3);
        await("host1 drops host3's route", () -> quietly(() -> !overlayRoutes(h1).contains(route(3))));
        assertEquals(2, b1.stats().peers() + 1);
    }

    @Test
    void deletedRoutesComeBackAtOnceAndConflictsAreReplaced() throws Exception {
        bridges(1, 2);
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        nodes.start(2, backend());
        // a route to host2's subnet via a wrong gateway (host2's lease exists, so it is a conflict, not a leftover)
        lan.ip(1, "route", "add", "100.96.2.0/24", "via", "10.168.0.9", "dev", "eth0");
        HostGwBackend b1 = backend();
        nodes.start(1, b1);
        await("host1 replaced the conflicting route", () -> quietly(() -> overlayRoutes(h1).contains(route(2))
                && overlayRoutes(h1).stream().noneMatch(r -> r.contains("10.168.0.9"))));
        assertEquals(1, b1.stats().replaced());
        ping(1, 2);

        // deleted by hand: back through the monitor (the periodic check is an hour away)
        lan.ip(1, "route", "del", "100.96.2.0/24");
        await("route restored", () -> quietly(() -> overlayRoutes(h1).contains(route(2))));
        assertTrue(b1.stats().restored() >= 1, b1.stats().toString());
        ping(1, 2);

        // replaced by hand with another gateway: ours again
        lan.ip(1, "route", "replace", "100.96.2.0/24", "via", "10.168.0.9", "dev", "eth0");
        await("route reasserted", () -> quietly(() -> overlayRoutes(h1).contains(route(2))
                && overlayRoutes(h1).stream().noneMatch(r -> r.contains("10.168.0.9"))));

        // the interface bounces: the kernel flushes the route silently; the link coming up brings it back
        lan.ip(1, "link", "set", "eth0", "down");
        lan.ip(1, "link", "set", "eth0", "up");
        await("route back after the interface came up", () -> quietly(() -> overlayRoutes(h1).contains(route(2))));
        ping(1, 2);
    }

    @Test
    void anIdenticalRouteIsLeftAloneAndForeignLeasesIgnored() throws Exception {
        bridges(1, 2);
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        nodes.start(2, backend());
        lan.ip(1, "route", "add", "100.96.2.0/24", "via", "10.168.0.3", "dev", "eth0", "proto", "static");
        nodes.allocator().reserve(subnet(50), new LeaseAttributes(TestUnderlay.address(3), null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"0a:00:00:00:00:01\"}"));
        nodes.allocator().reserve(subnet(51), LeaseAttributes.udp(TestUnderlay.address(3)));
        HostGwBackend b1 = backend();
        nodes.start(1, b1);
        Thread.sleep(500);
        await("host2 known", () -> b1.stats().peers() == 1);
        String shown = lan.ip(1, "route", "show", "100.96.2.0/24").trim();
        assertEquals("100.96.2.0/24 via 10.168.0.3 dev eth0 proto static", shown, "identical: not touched");
        assertEquals(0, b1.stats().replaced());
        assertEquals(2, b1.stats().ignoredLeases());
        assertFalse(overlayRoutes(h1).stream().anyMatch(r -> r.startsWith("100.96.50.") || r.startsWith("100.96.51.")));
        ping(1, 2);
    }

    @Test
    void aPublicIpOtherThanTheInterfacesIsRefusedAsFlannelDoes() throws Exception {
        OverlayException e = assertThrows(OverlayException.class, () -> lan.host(1).call(() -> OverlayNode.builder()
                .allocator(nodes.allocator()).backend(backend()).underlayInterface(TestUnderlay.DEVICE)
                .publicAddress(Ipv4Prefix.parseAddress("203.0.113.7")).subnetFile(null).build().start()));
        assertEquals("your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not "
                + "supported by host-gw backend", e.getMessage());
        assertTrue(nodes.allocator().leases().isEmpty(), "no lease taken");
    }

    @Test
    void aLeftoverRouteIntoTheNetworkIsRemovedAtTheFirstPeerList() throws Exception {
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        // a peer that went away while no node ran on host1
        lan.ip(1, "route", "add", "100.96.9.0/24", "via", "10.168.0.9", "dev", "eth0");
        lan.ip(1, "route", "add", "192.0.2.0/24", "via", "10.168.0.9", "dev", "eth0"); // not ours
        HostGwBackend b1 = backend();
        nodes.start(1, b1);
        nodes.start(2, backend());
        await("only host2's route left", () -> routesAre(h1, route(2)));
        assertTrue(lan.ip(1, "route").contains("192.0.2.0/24 via 10.168.0.9 dev eth0"));
    }

    @Test
    void closingLeavesTheRoutesAsFlannelDoesUnlessToldOtherwise() throws Exception {
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        nodes.start(1, HostGwBackend.builder().build());
        nodes.start(2, backend());
        await("host1 routes host2", () -> quietly(() -> overlayRoutes(h1).contains(route(2))));
        nodes.remove(1).close();
        assertTrue(overlayRoutes(h1).contains(route(2)), "left in place");
        HostGwBackend b1 = backend();
        OverlayNode again = nodes.start(1, b1);
        assertEquals(subnet(1), again.lease().subnet());
        await("host2 known again", () -> b1.stats().peers() == 1);
        nodes.remove(1).close();
        assertFalse(overlayRoutes(h1).contains(route(2)), "cleanUpOnClose removes it");
    }
}
