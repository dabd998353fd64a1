package io.overlay4j.vxlan;

import static io.overlay4j.tun.testing.TestNodes.await;
import static io.overlay4j.tun.testing.TestNodes.base;
import static io.overlay4j.tun.testing.TestNodes.quietly;
import static io.overlay4j.tun.testing.TestNodes.subnet;
import static io.overlay4j.vxlan.VxlanHosts.deviceRoutes;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.NodeStats;
import io.overlay4j.OffloadStatus;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.PeerStats;
import io.overlay4j.TrafficStats;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.testing.TestUnderlay;
import io.overlay4j.udp.VxlanLeaseData;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.file.Files;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The userspace vxlan data plane on real hosts (namespaces on one L2 switch, a shared lease file), next to the
 * kernel's: a mixed pair (kernel node + userspace node) both ways, two userspace nodes, peers joining and leaving, a
 * restart, the AUTO fallback when the kernel refuses vxlan devices, forged datagrams, bad leases, DirectRouting, GBP
 * and a kernel device left by an earlier run.
 *
 * <p>Over this veth underlay the kernel nodes' {@code eth0} gets {@code ethtool -K eth0 tx off}: a kernel VXLAN
 * sender leaves inner checksums partial for the NIC, and a veth hands them on unfinished (see {@link VxlanBackend}).
 */
class VxlanUserspaceKernelTest extends VxlanKernelTestBase {
    private static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("100.96.0.0/16");

    VxlanUserspaceKernelTest() {
        super("o4juv", "ping", "ethtool");
    }

    @AfterEach
    void clearProperty() {
        System.clearProperty(VxlanBackend.REFUSE_KERNEL_DEVICE_PROPERTY);
    }

    private static VxlanBackend userspace() {
        return VxlanBackend.builder().dataPlane(VxlanBackend.DataPlane.USERSPACE).build();
    }

    /** A kernel VXLAN sender on a veth underlay needs the underlay to finish its inner checksums, as a NIC does. */
    private void finishChecksumsOnTheUnderlay(int host) throws IOException {
        lan.exec(host, "ethtool", "-K", TestUnderlay.DEVICE, "tx", "off");
    }

    private static UserspaceVxlanNetwork userspaceNetwork(VxlanBackend b) {
        assertEquals(VxlanBackend.DataPlane.USERSPACE, b.activeDataPlane().orElseThrow());
        return (UserspaceVxlanNetwork) b.current();
    }

    // ---- the tests -----------------------------------------------------------------------------------------

    @Test
    void aKernelNodeAndAUserspaceNodeTalkBothWays() throws Exception {
        nodes.network(CONFIG);
        finishChecksumsOnTheUnderlay(1);
        VxlanBackend k = kernel();
        VxlanBackend u = userspace();
        nodes.start(1, k);
        nodes.start(2, u);
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        NetlinkRouteProgrammer h2 = nodes.netlink(2);
        await("the kernel node programs the userspace node", () -> hosts.programmedFor(h1, 2));
        await("the userspace node follows the kernel node", () -> userspaceNetwork(u).peerCount() == 1);

        // the same lease a kernel node publishes, with a VtepMAC derived from VNI and public address
        String mac2 = hosts.vtepMac(2);
        assertEquals(UserspaceVxlanNetwork.derivedMac(1, TestUnderlay.address(2)), mac2);
        assertEquals(0x02, Integer.parseInt(mac2.substring(0, 2), 16) & 0x03, "locally administered unicast");
        assertEquals("{\"PublicIP\":\"10.168.0.3\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\",\"BackendData\":"
                + "{\"VNI\":1,\"VtepMAC\":\"" + mac2 + "\"}}", hosts.lease(2).attributes().toJson());
        assertEquals(List.of("FLANNEL_NETWORK=100.96.0.0/16", "FLANNEL_SUBNET=100.96.2.1/24", "FLANNEL_MTU=1450",
                "FLANNEL_IPMASQ=false"), Files.readAllLines(dir.resolve("host2.env")));
        assertEquals(1450, nodes.get(2).mtu());

        // the userspace node's kernel state: a TUN named flannel.1 with <base>/32, the whole network routed into it
        assertEquals("tun", h2.link(DEVICE).orElseThrow().kind());
        assertEquals(1450, h2.mtu(DEVICE));
        assertEquals(List.of(Ipv4Prefix.parse("100.96.2.0/32")), h2.addresses(DEVICE));
        assertEquals(Set.of(NETWORK + " dev " + DEVICE), deviceRoutes(h2, DEVICE));
        assertEquals(Set.of(), deviceRoutes(h2, TestUnderlay.DEVICE).stream()
                .filter(r -> r.startsWith("100.96.")).collect(Collectors.toSet()));

        // both ways: host to host (the /32s), ping and TCP byte for byte
        hosts.ping(1, base(2));
        hosts.ping(2, base(1));
        hosts.tcp(1, 2, base(2));
        hosts.tcp(2, 1, base(1));
        TrafficStats s = nodes.get(2).stats();
        assertTrue(s.ingressBytes() > 4 << 20 && s.egressBytes() > 4 << 20, s.toString());
        assertEquals(0, s.totalDrops() - s.drops(DropReason.NOT_IPV4), "only the TUN's IPv6 chatter: " + s);
        assertEquals(1, u.stats().peers());
        assertEquals(0, u.stats().malformedLeases() + u.stats().ignoredLeases() + u.stats().failures());
        // per peer: everything the userspace node forwarded went to and came from its one peer, the kernel node
        // (equal once the last packets are counted: a peer's when admitted, the node's after the TUN write)
        await("the per-peer counters to add up to the node's", () -> {
            NodeStats n = nodes.get(2).nodeStats();
            PeerStats p = n.peers().get(0);
            return p.egressPackets() == n.traffic().egressPackets() && p.egressBytes() == n.traffic().egressBytes()
                    && p.ingressPackets() == n.traffic().ingressPackets()
                    && p.ingressBytes() == n.traffic().ingressBytes();
        });
        PeerStats p1 = nodes.get(2).peerStats().get(0);
        assertEquals(subnet(1), p1.subnet());
        assertEquals(1, nodes.get(2).peerStats().size());
        assertTrue(p1.ingressBytes() > 4 << 20 && p1.egressBytes() > 4 << 20, p1.toString());
        assertTrue(p1.lastSeen() != null, "last seen");
        assertEquals(List.of(OffloadStatus.Feature.TUN_VNET_HEADER, OffloadStatus.Feature.UDP_GSO,
                OffloadStatus.Feature.UDP_GRO), nodes.get(2).nodeStats().offloads().stream()
                .map(OffloadStatus::feature).toList());
        assertEquals(DEVICE, nodes.get(2).nodeStats().offloads().get(0).device());

        // closing the userspace node removes its TUN and route
        nodes.stop(2);
        await("host2's TUN gone", () -> quietly(() -> h2.link(DEVICE).isEmpty()
                && deviceRoutes(h2, DEVICE).isEmpty()));
    }

    @Test
    void twoUserspaceNodesAndPeersJoiningAndLeaving() throws Exception {
        nodes.network(CONFIG);
        lan.addHost();
        VxlanBackend u1 = userspace();
        nodes.start(1, u1);
        nodes.start(2, userspace());
        await("node 1 follows node 2", () -> userspaceNetwork(u1).peerCount() == 1);
        assertTrue(!hosts.vtepMac(1).equals(hosts.vtepMac(2)), "two VTEPs, two MACs");
        hosts.ping(1, base(2));
        hosts.tcp(2, 1, base(1));

        // a kernel node joins: everyone reaches everyone
        finishChecksumsOnTheUnderlay(3);
        nodes.start(3, kernel());
        NetlinkRouteProgrammer h3 = nodes.netlink(3);
        await("node 1 follows nodes 2 and 3", () -> userspaceNetwork(u1).peerCount() == 2);
        await("the kernel node programs both userspace nodes", () -> hosts.programmedFor(h3, 1, 2));
        hosts.ping(1, base(3));
        hosts.ping(3, base(2));
        hosts.tcp(3, 1, base(1));
        assertTrue(userspaceNetwork(u1).peers().get(subnet(3)).toString().contains("10.168.0.4:8472"),
                userspaceNetwork(u1).peers().toString());

        // it leaves, giving its lease back: the userspace nodes forget it, and traffic to it is answered locally
        OverlayNode n3 = nodes.remove(3);
        Lease lease3 = n3.lease();
        n3.close();
        nodes.allocator().release(lease3);
        await("node 1 forgets node 3", () -> userspaceNetwork(u1).peerCount() == 1);
        assertNull(userspaceNetwork(u1).peers().get(subnet(3)));
        String out = lan.exec(1, "sh", "-c", "ping -c 1 -W 1 " + base(3).getHostAddress() + " || true");
        assertTrue(out.contains("Unreachable") || out.contains("100% packet loss"), out);
        hosts.ping(1, base(2));
    }

    @Test
    void aRestartKeepsTheMacAndTheSubnet() throws Exception {
        nodes.network(CONFIG);
        finishChecksumsOnTheUnderlay(1);
        nodes.start(1, kernel());
        nodes.start(2, userspace());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        await("the kernel node programs the userspace node", () -> hosts.programmedFor(h1, 2));
        String mac = hosts.vtepMac(2);
        hosts.ping(1, base(2));

        nodes.stop(2);
        VxlanBackend again = userspace();
        nodes.start(2, again);
        assertEquals(subnet(2), nodes.get(2).lease().subnet());
        assertEquals(mac, hosts.vtepMac(2), "the restarted userspace node publishes the same VtepMAC");
        assertEquals(mac, userspaceNetwork(again).vtepMac());
        await("the userspace node follows the kernel node", () -> userspaceNetwork(again).peerCount() == 1);
        assertTrue(hosts.programmedFor(h1, 2), "the kernel peer's entries needed no change");
        hosts.ping(1, base(2));
        hosts.tcp(1, 2, base(2));
        hosts.tcp(2, 1, base(1));
    }

    @Test
    void autoFallsBackToUserspaceWhenTheKernelRefusesVxlanDevices() throws Exception {
        nodes.network(CONFIG);
        finishChecksumsOnTheUnderlay(2);
        // KERNEL alone fails as on a host without the vxlan module: a DEVICE error, no lease, nothing left behind
        System.setProperty(VxlanBackend.REFUSE_KERNEL_DEVICE_PROPERTY, "true");
        OverlayException e = assertThrows(OverlayException.class, () -> nodes.start(1, kernel()));
        assertEquals(OverlayException.Kind.DEVICE, e.kind());
        assertTrue(e.getMessage().contains("the kernel cannot create the vxlan device flannel.1")
                && e.getMessage().contains("EOPNOTSUPP"), e.getMessage());
        assertTrue(nodes.allocator().leases().isEmpty(), "no lease is taken");
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        assertTrue(h1.link(DEVICE).isEmpty());

        VxlanBackend auto = VxlanBackend.builder().dataPlane(VxlanBackend.DataPlane.AUTO).cleanUpOnClose(true)
                .build();
        nodes.start(1, auto);
        System.clearProperty(VxlanBackend.REFUSE_KERNEL_DEVICE_PROPERTY);
        assertEquals(VxlanBackend.DataPlane.USERSPACE, auto.activeDataPlane().orElseThrow());
        assertEquals("tun", h1.link(DEVICE).orElseThrow().kind());
        assertEquals("vxlan", hosts.lease(1).attributes().backendType());

        // and with a kernel that can, AUTO is the kernel's
        VxlanBackend kernelAuto = VxlanBackend.builder().dataPlane(VxlanBackend.DataPlane.AUTO).cleanUpOnClose(true)
                .build();
        nodes.start(2, kernelAuto);
        assertEquals(VxlanBackend.DataPlane.KERNEL, kernelAuto.activeDataPlane().orElseThrow());
        NetlinkRouteProgrammer h2 = nodes.netlink(2);
        assertEquals("vxlan", h2.link(DEVICE).orElseThrow().kind());
        await("the kernel node programs the fallen-back node", () -> hosts.programmedFor(h2, 1));
        await("the fallen-back node follows the kernel node", () -> userspaceNetwork(auto).peerCount() == 1);
        hosts.ping(1, base(2));
        hosts.ping(2, base(1));
        hosts.tcp(2, 1, base(1));
    }

    @Test
    void forgedDatagramsAreCountedAndNeverAnswered() throws Exception {
        nodes.network(CONFIG);
        finishChecksumsOnTheUnderlay(1);
        nodes.start(1, kernel());
        VxlanBackend u = userspace();
        OverlayNode node2 = nodes.start(2, u);
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        await("the kernel node programs the userspace node", () -> hosts.programmedFor(h1, 2));
        await("the userspace node follows the kernel node", () -> userspaceNetwork(u).peerCount() == 1);
        hosts.ping(1, base(2));
        lan.ip(1, "addr", "add", "10.168.0.99/24", "dev", TestUnderlay.DEVICE);

        TrafficStats before = quiet(node2);
        String mac2 = hosts.vtepMac(2);
        String mac1 = hosts.vtepMac(1);
        byte[] inner = ipv4Udp(base(1), base(2));
        DatagramChannel peer = lan.host(1).call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress(TestUnderlay.address(1), 0)));
        DatagramChannel stranger = lan.host(1).call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("10.168.0.99", 0)));
        try (peer; stranger) {
            InetSocketAddress target = new InetSocketAddress(TestUnderlay.address(2), 8472);
            peer.send(vxlan(2, mac2, mac1, 0x0800, inner), target);                     // another VNI
            peer.send(vxlan(1, "0a:00:00:00:00:99", mac1, 0x0800, inner), target);      // another MAC
            peer.send(vxlan(1, "ff:ff:ff:ff:ff:ff", mac1, 0x0800, inner), target);      // broadcast
            peer.send(vxlan(1, mac2, mac1, 0x0806, new byte[28]), target);              // ARP: never answered
            stranger.send(vxlan(1, mac2, mac1, 0x0800, inner), target);                 // no lease at 10.168.0.99
            await("the forged datagrams counted", () -> {
                TrafficStats s = node2.stats();
                return s.drops(DropReason.BAD_ENCAPSULATION) - before.drops(DropReason.BAD_ENCAPSULATION) == 3
                        && s.drops(DropReason.UNKNOWN_SENDER) - before.drops(DropReason.UNKNOWN_SENDER) == 1
                        && s.drops(DropReason.NOT_IPV4) - before.drops(DropReason.NOT_IPV4) >= 1;
            });
            Thread.sleep(300);
            TrafficStats after = node2.stats();
            assertEquals(before.ingressPackets(), after.ingressPackets(), "a forged datagram reached the TUN");
            assertEquals(before.egressPackets(), after.egressPackets(), "something was sent");
            peer.configureBlocking(false);
            stranger.configureBlocking(false);
            assertNull(peer.receive(ByteBuffer.allocate(2048)), "the sender got an answer");
            assertNull(stranger.receive(ByteBuffer.allocate(2048)), "the stranger got an answer");
        }
        hosts.ping(1, base(2));
    }

    @Test
    void admittingAnySenderAddressStillChecksVniMacAndInnerSource() throws Exception {
        nodes.network(CONFIG);
        VxlanBackend u1 = userspace();
        nodes.start(1, u1);
        OverlayNode node2 = nodes.start(2, VxlanBackend.builder().dataPlane(VxlanBackend.DataPlane.USERSPACE)
                .admitAnySenderAddress(true).build());
        await("node 1 follows node 2", () -> userspaceNetwork(u1).peerCount() == 1);
        hosts.ping(1, base(2));
        lan.ip(1, "addr", "add", "10.168.0.99/24", "dev", TestUnderlay.DEVICE);
        TrafficStats before = quiet(node2);
        DatagramChannel natted = lan.host(1).call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress("10.168.0.99", 0)));
        try (natted) {
            InetSocketAddress target = new InetSocketAddress(TestUnderlay.address(2), 8472);
            String mac1 = hosts.vtepMac(1);
            String mac2 = hosts.vtepMac(2);
            natted.send(vxlan(1, mac2, mac1, 0x0800, ipv4Udp(base(1), base(2))), target);
            natted.send(vxlan(2, mac2, mac1, 0x0800, ipv4Udp(base(1), base(2))), target);
            natted.send(vxlan(1, mac2, mac1, 0x0800, ipv4Udp(Ipv4Prefix.parseAddress("192.0.2.1"), base(2))), target);
            await("one admitted, two refused", () -> {
                TrafficStats s = node2.stats();
                return s.ingressPackets() - before.ingressPackets() == 1
                        && s.drops(DropReason.BAD_ENCAPSULATION) - before.drops(DropReason.BAD_ENCAPSULATION) == 1
                        && s.drops(DropReason.FOREIGN_SOURCE) - before.drops(DropReason.FOREIGN_SOURCE) == 1;
            });
            assertEquals(before.drops(DropReason.UNKNOWN_SENDER), node2.stats().drops(DropReason.UNKNOWN_SENDER));
        }
    }

    @Test
    void badLeasesAreSkippedAndCountedAndTheOthersWork() throws Exception {
        nodes.network(CONFIG);
        Inet4Address ghost = Ipv4Prefix.parseAddress("10.168.0.50");
        hosts.reserveMalformed(ghost);
        nodes.allocator().reserve(subnet(53), new LeaseAttributes(ghost, null, "vxlan", "{\"VNI\":1,\"VtepMAC\":"
                + "\"01:00:5e:00:00:01\"}"));
        nodes.allocator().reserve(subnet(54), new LeaseAttributes(ghost, null, "host-gw", null));
        nodes.allocator().reserve(subnet(55), LeaseAttributes.udp(ghost));
        VxlanBackend u1 = userspace();
        nodes.start(1, u1);
        nodes.start(2, userspace());
        await("node 1 follows node 2 only", () -> userspaceNetwork(u1).peerCount() == 1);
        assertEquals(4, u1.stats().malformedLeases(), u1.stats().toString());
        assertEquals(2, u1.stats().ignoredLeases(), u1.stats().toString());
        hosts.ping(1, base(2));
        hosts.tcp(2, 1, base(1));

        // a peer whose lease turns malformed is dropped from the data plane
        nodes.allocator().reserve(subnet(60), new LeaseAttributes(ghost, null, "vxlan",
                new VxlanLeaseData(1, "0a:00:00:00:00:60").toJson()));
        await("node 1 follows host 60", () -> userspaceNetwork(u1).peerCount() == 2);
        nodes.allocator().reserve(subnet(60), new LeaseAttributes(ghost, null, "vxlan", "{\"VNI\":1,\"VtepMAC\":42}"));
        await("host 60 dropped", () -> userspaceNetwork(u1).peerCount() == 1);
        hosts.ping(1, base(2));
    }

    @Test
    void theConfiguredPortAndMtuHoldForBothDataPlanes() throws Exception {
        nodes.network("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"Port\":4789,\"MTU\":1400}}");
        finishChecksumsOnTheUnderlay(1);
        nodes.start(1, kernel());
        VxlanBackend u = userspace();
        nodes.start(2, u);
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        NetlinkRouteProgrammer h2 = nodes.netlink(2);
        assertEquals(4789, h1.vxlanLink(DEVICE).orElseThrow().port());
        assertEquals(1350, h2.mtu(DEVICE), "MTU - 50");
        assertEquals(1350, nodes.get(2).mtu());
        assertTrue(Files.readAllLines(dir.resolve("host2.env")).contains("FLANNEL_MTU=1350"));
        await("the kernel node programs the userspace node", () -> hosts.programmedFor(h1, 2));
        await("the userspace node follows the kernel node", () -> userspaceNetwork(u).peerCount() == 1);
        assertTrue(userspaceNetwork(u).peers().get(subnet(1)).toString().contains("10.168.0.2:4789"),
                userspaceNetwork(u).peers().toString());
        hosts.ping(1, base(2));
        hosts.ping(2, base(1));
        hosts.tcp(1, 2, base(2));
    }

    @Test
    void directRoutingRoutesPeersOnTheSameLinkWithoutVxlan() throws Exception {
        nodes.network("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"DirectRouting\":true}}");
        VxlanBackend u1 = userspace();
        nodes.start(1, u1);
        nodes.start(2, userspace());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        await("host1 routes host2 directly", () -> quietly(() -> deviceRoutes(h1, TestUnderlay.DEVICE)
                .contains("100.96.2.0/24 via 10.168.0.3 dev eth0")));
        hosts.ping(1, base(2));
        hosts.ping(2, base(1));
        long egress = nodes.get(1).stats().egressPackets();
        hosts.ping(1, Ipv4Prefix.parseAddress("100.96.2.0"));
        assertEquals(egress, nodes.get(1).stats().egressPackets(), "the kernel routed it, not the TUN");

        nodes.stop(2);
        nodes.allocator().release(hosts.lease(2));
        await("the direct route goes with the lease", () -> quietly(() -> deviceRoutes(h1, TestUnderlay.DEVICE)
                .stream().noneMatch(r -> r.startsWith("100.96."))));
        nodes.stop(1);
        assertTrue(deviceRoutes(h1, TestUnderlay.DEVICE).stream().noneMatch(r -> r.startsWith("100.96.")));
    }

    @Test
    void gbpIsRefusedAndALeftoverKernelDeviceIsReplaced() throws Exception {
        nodes.network("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\",\"GBP\":true}}");
        OverlayException e = assertThrows(OverlayException.class, () -> nodes.start(1, userspace()));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertTrue(e.getMessage().contains("GBP"), e.getMessage());
        assertTrue(nodes.allocator().leases().isEmpty(), "no lease is taken for a config it cannot serve");
        nodes.allocator().close();
        Files.delete(dir.resolve("leases.json"));

        // flannel.1 as a kernel run (flanneld's, or overlay4j's KERNEL data plane) leaves it: it goes, the TUN comes
        nodes.network(CONFIG);
        lan.ip(1, "link", "add", DEVICE, "type", "vxlan", "id", "1", "local", "10.168.0.2", "dev", "eth0", "dstport",
                "8472", "nolearning");
        lan.ip(1, "link", "set", DEVICE, "up");
        lan.ip(1, "route", "add", "100.96.2.0/24", "via", "100.96.2.0", "dev", DEVICE, "onlink");
        VxlanBackend u1 = userspace();
        nodes.start(1, u1);
        nodes.start(2, userspace());
        NetlinkRouteProgrammer h1 = nodes.netlink(1);
        assertEquals("tun", h1.link(DEVICE).orElseThrow().kind());
        await("node 1 follows node 2", () -> userspaceNetwork(u1).peerCount() == 1);
        assertEquals(Set.of(NETWORK + " dev " + DEVICE), deviceRoutes(h1, DEVICE));
        hosts.ping(1, base(2));
        assertFalse(lan.ip(1, "-d", "link", "show").contains("vxlan id"), lan.ip(1, "-d", "link", "show"));
    }

    // ---- forged datagrams ------------------------------------------------------------------------------------

    /** The node's counters once they have not changed for 300 ms. */
    private static TrafficStats quiet(OverlayNode node) throws InterruptedException {
        TrafficStats last = node.stats();
        for (int i = 0; i < 50; i++) {
            Thread.sleep(300);
            TrafficStats now = node.stats();
            if (now.equals(last)) {
                return now;
            }
            last = now;
        }
        throw new AssertionError("the node never went quiet: " + last);
    }

    /** A minimal IPv4/UDP packet (valid header checksum) from {@code src} to {@code dst}. */
    private static byte[] ipv4Udp(Inet4Address src, Inet4Address dst) {
        ByteBuffer b = ByteBuffer.allocate(36);
        b.put((byte) 0x45).put((byte) 0).putShort((short) 36).putInt(0).put((byte) 64).put((byte) 17).putShort(
                (short) 0).put(src.getAddress()).put(dst.getAddress());
        int sum = 0;
        for (int i = 0; i < 20; i += 2) {
            sum += b.getShort(i) & 0xffff;
        }
        sum = (sum & 0xffff) + (sum >>> 16);
        sum = (sum & 0xffff) + (sum >>> 16);
        b.putShort(10, (short) ~sum);
        b.putShort((short) 4000).putShort((short) 4001).putShort((short) 16).putShort((short) 0).putLong(0);
        return b.array();
    }

    private static ByteBuffer vxlan(int vni, String dstMac, String srcMac, int etherType, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(22 + payload.length);
        b.putInt(0x08000000).putInt(vni << 8);
        b.put(new VxlanLeaseData(1, dstMac).vtepMacBytes()).put(new VxlanLeaseData(1, srcMac).vtepMacBytes());
        b.putShort((short) etherType).put(payload);
        return b.flip();
    }
}
