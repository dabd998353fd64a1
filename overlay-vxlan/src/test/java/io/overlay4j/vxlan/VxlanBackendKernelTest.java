package io.overlay4j.vxlan;

import static io.overlay4j.tun.testing.TestNodes.await;
import static io.overlay4j.tun.testing.TestNodes.base;
import static io.overlay4j.tun.testing.TestNodes.quietly;
import static io.overlay4j.tun.testing.TestNodes.subnet;
import static io.overlay4j.vxlan.VxlanHosts.deviceRoutes;
import static io.overlay4j.vxlan.VxlanHosts.expectedRoutes;
import static io.overlay4j.vxlan.VxlanHosts.fdb;
import static io.overlay4j.vxlan.VxlanHosts.neighbours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.VxlanLink;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.tun.testing.TestUnderlay;
import io.overlay4j.udp.VxlanLeaseData;
import java.net.Inet4Address;
import java.nio.file.Files;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * The kernel vxlan backend on real hosts (namespaces on one L2 switch, a shared lease file): the kernel objects after
 * setup compared entry by entry with what flannel's source creates ({@code pkg/backend/vxlan/device.go},
 * {@code vxlan_network.go}), traffic through them, peers joining and leaving, restarts, leftover devices, a deleted
 * device, entries deleted by hand, malformed and foreign leases, DirectRouting.
 */
class VxlanBackendKernelTest extends VxlanKernelTestBase {
    VxlanBackendKernelTest() {
        super("o4jvx", "ping", "bridge");
    }

    /** Two kernel nodes on {@link #CONFIG}; returns host 1's backend once host 1 has programmed host 2. */
    private VxlanBackend twoNodes() throws Exception {
        nodes.network(CONFIG);
        VxlanBackend b1 = kernel();
        nodes.start(1, b1);
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        await("host1 programs host2", () -> hosts.programmedFor(h1, 2));
        return b1;
    }

    private static Set<String> lines(String text) {
        return text.lines().map(String::trim).filter(s -> !s.isEmpty()).collect(Collectors.toCollection(TreeSet::new));
    }

    // ---- the tests -----------------------------------------------------------------------------------------

    @Test
    void kernelObjectsAreFlannelsAndCarryTraffic() throws Exception {
        nodes.network(CONFIG);
        VxlanBackend b1 = kernel();
        nodes.start(1, b1);
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        NetlinkRouteProgrammer h2 = nodes.netlink(2);
        await("host1 programs host2 and host2 host1", () -> hosts.programmedFor(h1, 2) && hosts.programmedFor(h2, 1));

        // the lease, byte for byte (pkg/lease/lease.go LeaseAttrs + vxlanLeaseAttrs)
        String mac1 = hosts.vtepMac(1);
        Lease lease1 = hosts.lease(1);
        assertEquals("{\"PublicIP\":\"10.168.0.2\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\",\"BackendData\":"
                + "{\"VNI\":1,\"VtepMAC\":\"" + mac1 + "\"}}", lease1.attributes().toJson());
        // subnet.env: FLANNEL_MTU = underlay MTU - 50
        assertEquals(List.of("FLANNEL_NETWORK=100.96.0.0/16", "FLANNEL_SUBNET=100.96.1.1/24", "FLANNEL_MTU=1450",
                "FLANNEL_IPMASQ=false"), Files.readAllLines(dir.resolve("host1.env")));

        // the device (device.go newVXLANDevice): VNI 1, underlay eth0, local = public IP, kernel port, no learning
        VxlanLink dev = h1.vxlanLink(DEVICE).orElseThrow();
        assertEquals(new VxlanLink(h1.linkIndex(DEVICE), DEVICE, 1, h1.linkIndex("eth0"),
                TestUnderlay.address(1), null, 8472, false, false, false, false, 1450, mac1), dev);
        assertEquals(0x02, Integer.parseInt(mac1.substring(0, 2), 16) & 0x03, "locally administered unicast");
        assertTrue(h1.isUp(DEVICE));
        assertEquals(List.of(Ipv4Prefix.parse("100.96.1.0/32")), h1.addresses(DEVICE));
        String details = lan.ip(1, "-d", "link", "show", DEVICE);
        assertTrue(details.contains("mtu 1450 ") && details.contains("link/ether " + mac1 + " "), details);
        assertTrue(details.contains("vxlan id 1 local 10.168.0.2 dev eth0 ") && details.contains("dstport 8472 ")
                && details.contains(" nolearning ") && !details.contains(" gbp") && !details.contains("l2miss")
                && !details.contains("l3miss"), details);
        assertTrue(lan.ip(1, "-4", "addr", "show", "dev", DEVICE).contains("inet 100.96.1.0/32 "));

        // the peer's entries, each compared with ip neigh / bridge fdb / ip route
        assertEquals(hosts.expectedNeighbours(2), neighbours(h1));
        assertEquals(Set.of("100.96.2.0 lladdr " + hosts.vtepMac(2) + " PERMANENT"),
                lines(lan.ip(1, "neigh", "show", "dev", DEVICE)));
        assertEquals(hosts.expectedFdb(2), fdb(h1));
        assertEquals(Set.of(hosts.vtepMac(2) + " dst 10.168.0.3 self permanent"), lines(TestNamespaces.exec(
                List.of("bridge", "-n", lan.host(1).name(), "fdb", "show", "dev", DEVICE))));
        assertEquals(expectedRoutes(2), deviceRoutes(h1, DEVICE));
        assertTrue(lines(lan.ip(1, "route")).contains("100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink"),
                lan.ip(1, "route"));
        assertTrue(lan.ip(1, "-d", "route", "show", "100.96.2.0/24").trim()
                .equals("unicast 100.96.2.0/24 via 100.96.2.0 dev flannel.1 proto boot scope global onlink"));

        // traffic both ways through the kernel's VXLAN (source = the /32 on flannel.1)
        hosts.ping(1, base(2));
        hosts.ping(2, base(1));
        hosts.tcp(1, 2, base(2));
        hosts.tcp(2, 1, base(1));
        assertTrue(nodes.get(1).stats().egressPackets() > 100, nodes.get(1).stats().toString());
        assertTrue(nodes.get(1).stats().ingressBytes() > 4 << 20, nodes.get(1).stats().toString());
        assertEquals(1, b1.stats().peers());
        assertEquals(0, b1.stats().malformedLeases() + b1.stats().failures());

        // cleanUpOnClose removes the device (and so everything on it)
        nodes.stop(2);
        await("host2's device gone", () -> quietly(() -> h2.link(DEVICE).isEmpty()));
    }

    @Test
    void peersJoiningAndLeavingAddAndRemoveTheirEntries() throws Exception {
        nodes.network(CONFIG);
        lan.addHost();
        nodes.start(1, kernel());
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        await("host1 programs host2", () -> hosts.programmedFor(h1, 2));

        nodes.start(3, kernel());
        NetlinkRouteProgrammer h3 = nodes.netlink(3);
        await("host1 programs hosts 2 and 3", () -> hosts.programmedFor(h1, 2, 3));
        await("host3 programs hosts 1 and 2", () -> hosts.programmedFor(h3, 1, 2));
        hosts.ping(1, base(3));
        hosts.ping(3, base(2));

        // host 3 leaves, giving its lease back: its neighbour, FDB entry and route disappear everywhere
        String mac3 = hosts.vtepMac(3);
        OverlayNode n3 = nodes.remove(3);
        Lease lease3 = n3.lease();
        n3.close();
        nodes.allocator().release(lease3);
        await("host1 forgets host3", () -> hosts.programmedFor(h1, 2));
        assertFalse(lan.ip(1, "neigh", "show", "dev", DEVICE).contains("100.96.3.0"));
        assertFalse(TestNamespaces.exec(List.of("bridge", "-n", lan.host(1).name(), "fdb", "show", "dev", DEVICE))
                .contains(mac3));
        assertFalse(lan.ip(1, "route").contains("100.96.3.0/24"));
        hosts.ping(1, base(2));
    }

    @Test
    void restartKeepsTheMacTheSubnetAndTheFlows() throws Exception {
        nodes.network(CONFIG);
        nodes.start(1, VxlanBackend.builder().build()); // flanneld's close: everything stays
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        NetlinkRouteProgrammer h2 = nodes.netlink(2);
        await("both programmed", () -> hosts.programmedFor(h1, 2) && hosts.programmedFor(h2, 1));
        String mac = hosts.vtepMac(1);

        nodes.stop(1);
        // while node 1 is down, the kernel keeps forwarding: its device, address and entries are still there
        assertEquals(mac, h1.vxlanLink(DEVICE).orElseThrow().mac());
        assertTrue(hosts.programmedFor(h1, 2));
        hosts.ping(2, base(1));

        nodes.start(1, kernel());
        assertEquals(subnet(1), nodes.get(1).lease().subnet());
        assertEquals(mac, hosts.vtepMac(1), "the restarted node reuses the device and publishes the same MAC");
        assertEquals(mac, h1.vxlanLink(DEVICE).orElseThrow().mac());
        await("both programmed", () -> hosts.programmedFor(h1, 2) && hosts.programmedFor(h2, 1));
        hosts.ping(1, base(2));
    }

    @Test
    void aLeftoverDeviceIsReusedWhenCompatible() throws Exception {
        nodes.network(CONFIG);
        String leftover = "0a:58:0a:a8:00:02";
        lan.ip(1, "link", "add", DEVICE, "address", leftover, "type", "vxlan", "id", "1", "local", "10.168.0.2",
                "dev", "eth0", "dstport", "8472", "nolearning");
        lan.ip(1, "addr", "add", "100.96.77.0/24", "dev", DEVICE);   // in the network: flannel removes it
        lan.ip(1, "addr", "add", "192.0.2.1/32", "dev", DEVICE);     // elsewhere: left alone
        lan.ip(1, "neigh", "replace", "100.96.99.0", "lladdr", "0a:00:00:00:00:99", "dev", DEVICE, "nud",
                "permanent");                                         // a peer gone while no node ran: removed
        nodes.start(1, kernel());
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        assertEquals(leftover, hosts.vtepMac(1), "a compatible device keeps its MAC");
        assertEquals(leftover, h1.vxlanLink(DEVICE).orElseThrow().mac());
        assertEquals(Set.of(Ipv4Prefix.parse("100.96.1.0/32"), Ipv4Prefix.parse("192.0.2.1/32")),
                Set.copyOf(h1.addresses(DEVICE)));
        assertEquals(1450, h1.mtu(DEVICE));
        await("host1 programs exactly host2", () -> hosts.programmedFor(h1, 2));
        // the other address came first on flannel.1, so name the source
        String out = lan.exec(1, "ping", "-I", "100.96.1.0", "-c", "2", "-i", "0.2", "-W", "2", "100.96.2.0");
        assertTrue(out.contains(" 0% packet loss"), out);
    }

    @Test
    void aLeftoverDeviceIsReplacedWhenIncompatible() throws Exception {
        nodes.network(CONFIG);
        // another VNI under flannel.1's name on host 1, another local address on host 2
        lan.ip(1, "link", "add", DEVICE, "address", "0a:58:00:00:00:01", "type", "vxlan", "id", "2", "local",
                "10.168.0.2", "dev", "eth0", "dstport", "8472", "nolearning");
        lan.ip(2, "link", "add", DEVICE, "address", "0a:58:00:00:00:02", "type", "vxlan", "id", "1", "local",
                "10.168.0.99", "dev", "eth0", "dstport", "8472", "nolearning");
        nodes.start(1, kernel());
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        NetlinkRouteProgrammer h2 = nodes.netlink(2);
        assertNotEquals("0a:58:00:00:00:01", hosts.vtepMac(1));
        assertEquals(1, h1.vxlanLink(DEVICE).orElseThrow().vni());
        assertNotEquals("0a:58:00:00:00:02", hosts.vtepMac(2));
        assertEquals(TestUnderlay.address(2), h2.vxlanLink(DEVICE).orElseThrow().local());
        await("both programmed", () -> hosts.programmedFor(h1, 2) && hosts.programmedFor(h2, 1));
        hosts.ping(1, base(2));

        // not a vxlan device at all under the name: replaced too
        nodes.stop(1); // cleanUpOnClose: flannel.1 is gone
        lan.ip(1, "link", "add", DEVICE, "type", "bridge");
        nodes.start(1, kernel());
        assertEquals("vxlan", h1.link(DEVICE).orElseThrow().kind());
        // a new device, so a new MAC in the lease: host2 follows it
        await("both programmed", () -> hosts.programmedFor(h1, 2) && hosts.programmedFor(h2, 1));
        hosts.ping(1, base(2));
    }

    @Test
    void aDeletedDeviceIsRecreatedWithItsMacAndPeers() throws Exception {
        VxlanBackend b1 = twoNodes();
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        String mac = hosts.vtepMac(1);

        lan.ip(1, "link", "del", DEVICE);
        await("flannel.1 recreated and host2 programmed again", () -> hosts.programmedFor(h1, 2)
                && quietly(() -> h1.isUp(DEVICE) && h1.addresses(DEVICE).contains(Ipv4Prefix.parse("100.96.1.0/32"))));
        assertEquals(mac, h1.vxlanLink(DEVICE).orElseThrow().mac(), "recreated with the published MAC");
        assertEquals(mac, hosts.vtepMac(1));
        assertTrue(b1.stats().deviceRecreations() >= 1, b1.stats().toString());
        hosts.ping(1, base(2));
        hosts.ping(2, base(1));

        // set down by hand: set up again (the kernel flushed its routes)
        lan.ip(1, "link", "set", DEVICE, "down");
        await("flannel.1 up again with its route", () -> hosts.programmedFor(h1, 2) && quietly(() -> h1.isUp(DEVICE)));
        hosts.ping(1, base(2));
    }

    @Test
    void entriesDeletedByHandComeBack() throws Exception {
        VxlanBackend b1 = twoNodes();
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        lan.ip(1, "route", "del", "100.96.2.0/24");
        await("route back", () -> hosts.programmedFor(h1, 2));
        lan.ip(1, "neigh", "del", "100.96.2.0", "dev", DEVICE);
        await("neighbour back", () -> hosts.programmedFor(h1, 2));
        TestNamespaces.exec(List.of("bridge", "-n", lan.host(1).name(), "fdb", "del", hosts.vtepMac(2), "dev", DEVICE,
                "dst", "10.168.0.3", "self"));
        await("FDB entry back", () -> hosts.programmedFor(h1, 2));
        assertTrue(b1.stats().repairs() >= 3, b1.stats().toString());
        hosts.ping(1, base(2));
    }

    @Test
    void malformedAndForeignLeasesAreSkippedAndTheOthersWork() throws Exception {
        nodes.network(CONFIG);
        Inet4Address ghost = Ipv4Prefix.parseAddress("10.168.0.50");
        hosts.reserveMalformed(ghost);
        nodes.allocator().reserve(subnet(53), new LeaseAttributes(ghost, null, "host-gw", null));
        nodes.allocator().reserve(subnet(54), LeaseAttributes.udp(ghost));
        VxlanBackend b1 = kernel();
        nodes.start(1, b1);
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        await("host1 programs host2 and nothing else", () -> hosts.programmedFor(h1, 2));
        assertEquals(3, b1.stats().malformedLeases(), b1.stats().toString());
        assertEquals(2, b1.stats().ignoredLeases(), b1.stats().toString());
        assertEquals(1, b1.stats().peers());
        hosts.ping(1, base(2));
        hosts.tcp(2, 1, base(1));

        // a peer whose lease turns malformed loses its entries (its old ones would point at a stale MAC)
        nodes.allocator().reserve(subnet(60), new LeaseAttributes(ghost, null, "vxlan",
                new VxlanLeaseData(1, "0a:00:00:00:00:60").toJson()));
        await("host1 programs host 60", () -> quietly(() -> neighbours(h1).size() == 2));
        assertTrue(deviceRoutes(h1, DEVICE).contains("100.96.60.0/24 via 100.96.60.0 dev flannel.1 onlink"));
        nodes.allocator().reserve(subnet(60), new LeaseAttributes(ghost, null, "vxlan", "{\"VNI\":1,\"VtepMAC\":42}"));
        await("host 60's entries removed", () -> hosts.programmedFor(h1, 2));
        hosts.ping(1, base(2));
    }

    @Test
    void directRoutingRoutesPeersOnTheSameLinkWithoutVxlan() throws Exception {
        nodes.network("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"DirectRouting\":true}}");
        nodes.start(1, kernel());
        nodes.start(2, kernel());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        // ip route get 10.168.0.3 is one route without gateway: the direct route, no neighbour, no FDB entry
        await("host1 routes host2 directly", () -> quietly(() -> deviceRoutes(h1, "eth0")
                .equals(Set.of("100.96.2.0/24 via 10.168.0.3 dev eth0"))));
        assertEquals(Set.of(), neighbours(h1));
        assertEquals(Set.of(), fdb(h1));
        assertEquals(Set.of(), deviceRoutes(h1, DEVICE));
        assertTrue(lines(lan.ip(1, "route")).contains("100.96.2.0/24 via 10.168.0.3 dev eth0"));
        hosts.ping(1, base(2));
        nodes.stop(2);
    }

    @Test
    void badOptionsAreConfigErrorsNamingTheField() throws Exception {
        nodes.network("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"VNI\":16777216}}");
        OverlayException e = assertThrows(OverlayException.class, () -> nodes.start(1, kernel()));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertEquals("error decoding VXLAN backend config: VNI must be 0..16777215: 16777216", e.getMessage());
        assertTrue(nodes.netlink(1).links().stream().noneMatch(l -> l.kind().equals("vxlan")), "no device is made");
        nodes.allocator().close();
        Files.delete(dir.resolve("leases.json"));
        nodes.network("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"Port\":\"8472\"}}");
        e = assertThrows(OverlayException.class, () -> nodes.start(1, kernel()));
        assertTrue(e.getMessage().contains("VXLANConfig.port of type int"), e.getMessage());
        assertTrue(nodes.allocator().leases().isEmpty(), "no lease is taken for a bad config");
    }

    @Test
    void theRegistryRunsVxlanForAVxlanConfig() throws Exception {
        nodes.network(CONFIG);
        NetworkNamespace h1 = lan.host(1);
        OverlayNode node = h1.call(() -> OverlayNode.builder().allocator(nodes.allocator())
                .underlayInterface(TestUnderlay.DEVICE).subnetFile(null).build().start());
        nodes.put(1, node);
        NetlinkRouteProgrammer p = nodes.netlink(1);
        assertTrue(p.vxlanLink(DEVICE).isPresent());
        assertEquals("vxlan", node.lease().attributes().backendType());
        node.close();
        nodes.remove(1);
        assertTrue(p.vxlanLink(DEVICE).isPresent(), "the default-built backend leaves flannel.1, as flanneld");
    }
}
