package io.overlay4j.tun;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.IOException;
import java.net.Inet4Address;
import java.util.EnumSet;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The kernel objects flannel's vxlan and host-gw backends make, programmed through {@link NetlinkRouteProgrammer}
 * and compared with what {@code ip -d link}, {@code ip neigh}, {@code bridge fdb} and {@code ip route} show; and
 * {@link NetlinkMonitor}'s notifications of their deletion.
 */
class NetlinkKernelObjectsTest {
    private static final String UNDERLAY = "o4jt-u0";
    private static final String VXLAN = "flannel.1";
    private static final String MAC = "0a:11:22:33:44:55";

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    private NetworkNamespace ns;

    @BeforeEach
    void underlay() throws IOException {
        ns = namespaces.createWithLoopback();
        namespaces.ip(ns, "link", "add", UNDERLAY, "type", "veth", "peer", "name", "o4jt-u1");
        namespaces.ip(ns, "addr", "add", "10.168.0.2/24", "dev", UNDERLAY);
        namespaces.ip(ns, "link", "set", UNDERLAY, "up");
        namespaces.ip(ns, "link", "set", "o4jt-u1", "up");
    }

    private NetlinkRouteProgrammer programmer() throws Exception {
        return ns.call(NetlinkRouteProgrammer::open);
    }

    private static Inet4Address ip(String text) {
        return Ipv4Prefix.parseAddress(text);
    }

    @Test
    void vxlanDeviceAsFlannelCreatesIt() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            int underlay = p.linkIndex(UNDERLAY);
            p.createVxlan(VxlanLink.request(VXLAN, 1, underlay, ip("10.168.0.2"), 0, false, false, 1450,
                    "0a:58:64:60:01:00"));
            String details = namespaces.ip(ns, "-d", "link", "show", VXLAN);
            assertTrue(details.contains("mtu 1450 "), details);
            assertTrue(details.contains("link/ether 0a:58:64:60:01:00 "), details);
            assertTrue(details.contains("vxlan id 1 local 10.168.0.2 dev " + UNDERLAY + " "), details);
            assertTrue(details.contains(" dstport 8472 "), details); // no PORT attribute: the kernel's default
            assertTrue(details.contains(" nolearning "), details);
            assertFalse(details.contains(" gbp"), details);
            assertFalse(details.contains("l2miss") || details.contains("l3miss"), details);

            VxlanLink read = p.vxlanLink(VXLAN).orElseThrow();
            assertEquals(new VxlanLink(p.linkIndex(VXLAN), VXLAN, 1, underlay, ip("10.168.0.2"), null, 8472, false,
                    false, false, false, 1450, "0a:58:64:60:01:00"), read);
            assertEquals("vxlan", p.link(VXLAN).orElseThrow().kind());
            assertTrue(p.vxlanLink(UNDERLAY).isEmpty(), "a veth is not a vxlan device");
            assertTrue(p.vxlanLink("o4jt-none").isEmpty());
            assertTrue(p.link("o4jt-none").isEmpty());

            ErrnoException e = assertThrows(ErrnoException.class, () -> p.createVxlan(
                    VxlanLink.request(VXLAN, 1, underlay, ip("10.168.0.2"), 0, false, false, 0, null)));
            assertEquals(ErrnoException.EEXIST, e.errno());

            p.createVxlan(VxlanLink.request("flannel.7", 7, underlay, ip("10.168.0.2"), 4789, true, true, 0, null));
            VxlanLink seven = p.vxlanLink("flannel.7").orElseThrow();
            assertEquals(7, seven.vni());
            assertEquals(4789, seven.port());
            assertTrue(seven.learning());
            assertTrue(seven.gbp());
            assertEquals(1450, seven.mtu(), "the kernel derives underlay MTU - 50");
            assertTrue(seven.mac().matches("([0-9a-f]{2}:){5}[0-9a-f]{2}"), seven.mac());
            details = namespaces.ip(ns, "-d", "link", "show", "flannel.7");
            assertTrue(details.contains("vxlan id 7 local 10.168.0.2 dev " + UNDERLAY + " "), details);
            assertTrue(details.contains(" dstport 4789 ") && details.contains(" gbp "), details);
            assertFalse(details.contains("nolearning"), details);

            p.setMacAddress(VXLAN, "0A:58:64:60:01:09");
            assertEquals("0a:58:64:60:01:09", p.vxlanLink(VXLAN).orElseThrow().mac());
            assertTrue(namespaces.ip(ns, "link", "show", VXLAN).contains("link/ether 0a:58:64:60:01:09 "));
        }
    }

    @Test
    void neighbourFdbAndOnlinkRouteMatchIpAndBridge() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            p.createVxlan(VxlanLink.request(VXLAN, 1, p.linkIndex(UNDERLAY), ip("10.168.0.2"), 0, false, false, 0,
                    null));
            p.addAddress(VXLAN, ip("100.96.1.0"), 32);
            p.setLinkUp(VXLAN);

            p.replaceNeighbour(VXLAN, ip("100.96.2.0"), "0a:00:00:00:00:01");
            p.replaceNeighbour(VXLAN, ip("100.96.2.0"), MAC); // replace: one entry, the new MAC
            List<Neighbour> neighbours = p.neighbours(VXLAN);
            assertEquals(1, neighbours.size(), neighbours.toString());
            Neighbour n = neighbours.get(0);
            assertEquals(ip("100.96.2.0"), n.address());
            assertEquals(MAC, n.mac());
            assertTrue(n.isPermanent());
            assertEquals("100.96.2.0 dev flannel.1 lladdr " + MAC + " PERMANENT", n.toString());
            assertEquals(n.toString(), namespaces.ip(ns, "neigh", "show", "dev", VXLAN).trim()
                    .replace("100.96.2.0 ", "100.96.2.0 dev flannel.1 "));
            assertTrue(p.neighbours(null).contains(n));
            assertEquals(List.of(), p.neighbours(UNDERLAY));

            p.replaceFdbEntry(VXLAN, MAC, ip("10.168.0.9"));
            p.replaceFdbEntry(VXLAN, MAC, ip("10.168.0.3")); // replace moves the MAC to the new VTEP
            List<FdbEntry> fdb = p.fdbEntries(VXLAN);
            assertEquals(1, fdb.size(), fdb.toString());
            FdbEntry f = fdb.get(0);
            assertEquals(MAC, f.mac());
            assertEquals(ip("10.168.0.3"), f.destination());
            assertTrue(f.isSelf() && f.isPermanent(), f.toString());
            assertEquals(MAC + " dev flannel.1 dst 10.168.0.3 self permanent", f.toString());
            assertEquals(MAC + " dst 10.168.0.3 self permanent",
                    TestNamespaces.exec(List.of("bridge", "-n", ns.name(), "fdb", "show", "dev", VXLAN)).trim());

            Route onlink = Route.onlink(Ipv4Prefix.parse("100.96.2.0/24"), ip("100.96.2.0"), VXLAN);
            p.replaceRoute(onlink);
            p.replaceRoute(onlink);
            assertTrue(p.routes().contains(onlink), p.routes().toString());
            assertEquals("100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink", onlink.toString());
            String shown = namespaces.ip(ns, "-d", "route", "show", "100.96.2.0/24");
            assertEquals("unicast 100.96.2.0/24 via 100.96.2.0 dev flannel.1 proto boot scope global onlink",
                    shown.trim());
            // without onlink the kernel refuses the gateway: nothing on flannel.1 covers 100.96.2.0
            ErrnoException e = assertThrows(ErrnoException.class, () -> p.replaceRoute(
                    Route.viaGateway(Ipv4Prefix.parse("100.96.3.0/24"), ip("100.96.3.0"), VXLAN)));
            assertTrue(e.errno() == ErrnoException.ENETUNREACH || e.errno() == ErrnoException.EINVAL, e.toString());

            p.deleteRoute(onlink);
            p.deleteRoute(onlink);
            p.deleteFdbEntry(VXLAN, MAC, ip("10.168.0.3"));
            p.deleteFdbEntry(VXLAN, MAC, ip("10.168.0.3"));
            p.deleteNeighbour(VXLAN, ip("100.96.2.0"));
            p.deleteNeighbour(VXLAN, ip("100.96.2.0"));
            p.deleteNeighbour("o4jt-none", ip("100.96.2.0"));
            assertEquals(List.of(), p.neighbours(VXLAN));
            assertEquals(List.of(), p.fdbEntries(VXLAN));
            assertFalse(p.routes().stream().anyMatch(r -> r.device().equals(VXLAN) && !r.kernel()));
            assertEquals("", namespaces.ip(ns, "neigh", "show", "dev", VXLAN).trim());
        }
    }

    @Test
    void linkStatsCountTraffic() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            LinkStats before = p.linkStats("lo");
            namespaces.exec(ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", "127.0.0.1");
            LinkStats after = p.linkStats("lo");
            assertTrue(after.txPackets() >= before.txPackets() + 4, before + " -> " + after);
            assertTrue(after.rxBytes() > before.rxBytes(), before + " -> " + after);
            String s = namespaces.ip(ns, "-s", "link", "show", "lo");
            Matcher m = Pattern.compile("TX:.*\\n\\s*(\\d+)\\s+(\\d+)").matcher(s);
            assertTrue(m.find(), s);
            assertTrue(Long.parseLong(m.group(2)) >= after.txPackets(), s);
            assertThrows(ErrnoException.class, () -> p.linkStats("o4jt-none"));
        }
    }

    @Test
    void monitorReportsDeletedDevicesRoutesAndNeighbours() throws Exception {
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        NetlinkMonitor.Listener listener = new NetlinkMonitor.Listener() {
            @Override
            public void linkDeleted(Link link) {
                events.add("link- " + link.name() + " " + link.kind());
            }

            @Override
            public void routeAdded(Route route) {
                events.add("route+ " + route);
            }

            @Override
            public void routeDeleted(Route route) {
                events.add("route- " + route);
            }

            @Override
            public void neighbourDeleted(Neighbour neighbour) {
                events.add("neigh- " + neighbour);
            }

            @Override
            public void fdbDeleted(FdbEntry entry) {
                events.add("fdb- " + entry);
            }
        };
        NetlinkMonitor monitor = ns.call(() -> NetlinkMonitor.start("o4jt-monitor",
                EnumSet.allOf(NetlinkMonitor.Group.class), listener));
        try (monitor; NetlinkRouteProgrammer p = programmer()) {
            p.createVxlan(VxlanLink.request(VXLAN, 1, p.linkIndex(UNDERLAY), ip("10.168.0.2"), 0, false, false, 0,
                    null));
            p.setLinkUp(VXLAN);
            p.replaceNeighbour(VXLAN, ip("100.96.2.0"), MAC);
            p.replaceFdbEntry(VXLAN, MAC, ip("10.168.0.3"));
            Route onlink = Route.onlink(Ipv4Prefix.parse("100.96.2.0/24"), ip("100.96.2.0"), VXLAN);
            p.replaceRoute(onlink);
            Route hostGw = Route.viaGateway(Ipv4Prefix.parse("100.96.3.0/24"), ip("10.168.0.3"), UNDERLAY);
            p.addRoute(hostGw);
            assertEquals("route+ " + onlink, await(events, "route+ 100.96.2.0/24"));
            assertEquals("route+ " + hostGw, await(events, "route+ 100.96.3.0/24"));

            namespaces.ip(ns, "route", "del", "100.96.3.0/24");
            assertEquals("route- " + hostGw, await(events, "route- 100.96.3.0/24"));

            namespaces.ip(ns, "neigh", "del", "100.96.2.0", "dev", VXLAN);
            String neigh = await(events, "neigh- ");
            assertTrue(neigh.startsWith("neigh- 100.96.2.0 dev flannel.1 "), neigh); // the kernel reports it FAILED
            TestNamespaces.exec(List.of("bridge", "-n", ns.name(), "fdb", "del", MAC, "dev", VXLAN, "dst",
                    "10.168.0.3", "self"));
            assertEquals("fdb- " + MAC + " dev flannel.1 dst 10.168.0.3 self permanent", await(events, "fdb- "));
            // the kernel flushes a deleted device's routes without announcing them: the link event is the signal
            namespaces.ip(ns, "link", "del", VXLAN);
            assertEquals("link- flannel.1 vxlan", await(events, "link- "));
        }
        monitor.close(); // idempotent
        assertTrue(monitor.toString().contains("closed"), monitor.toString());
    }

    /** Waits for the first event starting with {@code prefix}, skipping others. */
    private static String await(BlockingQueue<String> events, String prefix) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        List<String> skipped = new java.util.ArrayList<>();
        while (System.nanoTime() < deadline) {
            String e = events.poll(100, TimeUnit.MILLISECONDS);
            if (e == null) {
                continue;
            }
            if (e.startsWith(prefix)) {
                return e;
            }
            skipped.add(e);
        }
        throw new AssertionError("no event '" + prefix + "...' within 10 s; saw " + skipped);
    }

    @Test
    void closedMonitorDeliversNothing() throws Exception {
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        NetlinkMonitor monitor = ns.call(() -> NetlinkMonitor.start("o4jt-monitor",
                EnumSet.of(NetlinkMonitor.Group.LINK), new NetlinkMonitor.Listener() {
                    @Override
                    public void linkDeleted(Link link) {
                        events.add(link.name());
                    }
                }));
        monitor.close();
        namespaces.ip(ns, "link", "del", "o4jt-u1");
        assertNull(events.poll(300, TimeUnit.MILLISECONDS));
    }
}
