package io.overlay4j.tun;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.ErrnoException;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.channels.ClosedChannelException;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class NetlinkRouteProgrammerTest {
    private static final String A = "o4jt-a";
    private static final String B = "o4jt-b";

    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    private NetworkNamespace ns;

    @BeforeEach
    void vethPair() throws IOException {
        ns = namespaces.create();
        namespaces.ip(ns, "link", "add", A, "type", "veth", "peer", "name", B);
    }

    private NetlinkRouteProgrammer programmer() throws Exception {
        return ns.call(NetlinkRouteProgrammer::open);
    }

    private static Inet4Address ip(String text) {
        return Ipv4Prefix.parseAddress(text);
    }

    private Set<String> ipRoutes() throws IOException {
        return Arrays.stream(namespaces.ip(ns, "route", "show", "table", "main").split("\n"))
                .map(String::trim).filter(s -> !s.isEmpty()).collect(Collectors.toCollection(TreeSet::new));
    }

    private static Set<String> strings(List<Route> routes) {
        return routes.stream().map(Route::toString).collect(Collectors.toCollection(TreeSet::new));
    }

    @Test
    void linkIndexUpDownAndMtu() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            String line = namespaces.ip(ns, "-o", "link", "show", A);
            assertEquals(Integer.parseInt(line.substring(0, line.indexOf(':'))), p.linkIndex(A));
            assertFalse(p.isUp(A));

            p.setLinkUp(A);
            p.setLinkUp(A);
            assertTrue(p.isUp(A));
            assertTrue(namespaces.ip(ns, "-o", "link", "show", A).matches("(?s).*<[^>]*\\bUP\\b.*"));
            p.setLinkDown(A);
            assertFalse(p.isUp(A));
            assertFalse(namespaces.ip(ns, "-o", "link", "show", A).matches("(?s).*<[^>]*\\bUP\\b.*"));

            assertEquals(1500, p.mtu(A));
            p.setMtu(A, 1400);
            assertEquals(1400, p.mtu(A));
            assertTrue(namespaces.ip(ns, "-o", "link", "show", A).contains(" mtu 1400 "));
        }
    }

    @Test
    void addressesAreIdempotent() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            assertEquals(List.of(), p.addresses(A));
            p.addAddress(A, ip("100.96.1.0"), 32);
            p.addAddress(A, ip("100.96.1.0"), 32);
            assertEquals(List.of(Ipv4Prefix.parse("100.96.1.0/32")), p.addresses(A));
            assertEquals(List.of(), p.addresses(B), "addresses are per device");
            String shown = namespaces.ip(ns, "-o", "-4", "addr", "show", "dev", A);
            assertEquals(1, shown.lines().count(), shown);
            assertTrue(shown.contains("inet 100.96.1.0/32 "), shown);

            p.deleteAddress(A, ip("100.96.1.0"), 32);
            p.deleteAddress(A, ip("100.96.1.0"), 32);
            assertEquals(List.of(), p.addresses(A));
            assertEquals("", namespaces.ip(ns, "-o", "-4", "addr", "show", "dev", A).trim());
        }
    }

    @Test
    void routesMatchIpRoute() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            p.setLinkUp(A);
            p.setLinkUp(B);
            p.addAddress(A, ip("10.99.0.1"), 24);
            Route connected = new Route(Ipv4Prefix.parse("10.99.0.0/24"), null, A, Route.SCOPE_LINK, ip("10.99.0.1"),
                    true);
            assertEquals(List.of(connected), p.routes());
            assertEquals(Set.of("10.99.0.0/24 dev o4jt-a proto kernel scope link src 10.99.0.1"), ipRoutes());

            Route overlay = Route.viaDevice(Ipv4Prefix.parse("100.96.0.0/16"), A);
            p.addRoute(overlay);
            p.addRoute(overlay);
            assertTrue(p.routes().contains(overlay), p.routes().toString());
            Route viaPeer = Route.viaGateway(Ipv4Prefix.parse("100.96.0.0/16"), ip("10.99.0.2"), A);
            p.replaceRoute(viaPeer);
            p.replaceRoute(viaPeer);
            Route dflt = Route.viaGateway(Ipv4Prefix.parse("0.0.0.0/0"), ip("10.99.0.254"), A);
            p.addRoute(dflt);
            assertEquals(Set.of(connected, viaPeer, dflt), Set.copyOf(p.routes()));
            assertEquals(strings(p.routes()), ipRoutes());
            assertTrue(ipRoutes().contains("100.96.0.0/16 via 10.99.0.2 dev o4jt-a"), ipRoutes().toString());
            assertTrue(ipRoutes().contains("default via 10.99.0.254 dev o4jt-a"), ipRoutes().toString());

            p.deleteRoute(viaPeer);
            p.deleteRoute(viaPeer);
            p.deleteRoute(dflt);
            assertEquals(List.of(connected), p.routes());
            assertEquals(Set.of(connected.toString()), ipRoutes());
        }
    }

    @Test
    void missingDeviceIsEnodevNamingTheRequest() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            ErrnoException e = assertThrows(ErrnoException.class, () -> p.linkIndex("o4jt-none"));
            assertEquals(19, e.errno());
            assertEquals("RTM_GETLINK o4jt-none failed: ENODEV (19)", e.getMessage());
            e = assertThrows(ErrnoException.class, () -> p.setLinkUp("o4jt-none"));
            assertEquals(ErrnoException.ENODEV, e.errno());
            assertTrue(e.getMessage().startsWith("RTM_NEWLINK o4jt-none up"), e.getMessage());
            e = assertThrows(ErrnoException.class, () -> p.addRoute(Route.viaDevice(Ipv4Prefix.parse("10.1.0.0/16"),
                    "o4jt-none")));
            assertEquals(ErrnoException.ENODEV, e.errno());
            p.deleteRoute(Route.viaDevice(Ipv4Prefix.parse("10.1.0.0/16"), "o4jt-none"));
        }
    }

    @Test
    void kernelRefusalIsErrnoExceptionNamingTheRoute() throws Exception {
        try (NetlinkRouteProgrammer p = programmer()) {
            p.setLinkUp(A);
            Route unreachable = Route.viaGateway(Ipv4Prefix.parse("100.97.0.0/16"), ip("192.0.2.1"), A);
            ErrnoException e = assertThrows(ErrnoException.class, () -> p.addRoute(unreachable));
            assertEquals(ErrnoException.ENETUNREACH, e.errno(), e.getMessage());
            assertTrue(e.getMessage().startsWith("RTM_NEWROUTE 100.97.0.0/16 via 192.0.2.1 dev o4jt-a"),
                    e.getMessage());
            assertTrue(e.getMessage().contains(" [kernel: "), "extended ack text: " + e.getMessage());
        }
    }

    @Test
    void closedProgrammerRefusesRequests() throws Exception {
        NetlinkRouteProgrammer p = programmer();
        p.close();
        p.close();
        assertThrows(ClosedChannelException.class, () -> p.linkIndex(A));
    }

    @Test
    void buildsTopologiesWithoutIp() throws Exception {
        NetworkNamespace other = namespaces.create();
        try (NetlinkRouteProgrammer p = programmer()) {
            p.createBridge("o4jt-br");
            ErrnoException e = assertThrows(ErrnoException.class, () -> p.createBridge("o4jt-br"));
            assertEquals(ErrnoException.EEXIST, e.errno());
            p.createVethPair("o4jt-h", "o4jt-c");
            p.setMaster("o4jt-h", "o4jt-br");
            assertTrue(namespaces.ip(ns, "-o", "link", "show", "o4jt-h").contains(" master o4jt-br "));
            assertTrue(namespaces.ip(ns, "-d", "-o", "link", "show", "o4jt-br").contains("bridge"));

            p.moveToNamespace("o4jt-c", other);
            assertEquals(ErrnoException.ENODEV, assertThrows(ErrnoException.class, () -> p.linkIndex("o4jt-c"))
                    .errno());
            try (NetlinkRouteProgrammer q = other.call(NetlinkRouteProgrammer::open)) {
                int index = q.linkIndex("o4jt-c");
                assertTrue(index > 0);
                assertTrue(namespaces.ip(other, "-o", "link", "show", "o4jt-c").contains("o4jt-c"));
                q.renameLink("o4jt-c", "eth0");
                assertEquals(index, q.linkIndex("eth0"));
                assertEquals(ErrnoException.ENODEV,
                        assertThrows(ErrnoException.class, () -> q.linkIndex("o4jt-c")).errno());
            }

            p.deleteLink("o4jt-h");
            p.deleteLink("o4jt-h");
            p.deleteLink("o4jt-br");
            assertFalse(p.linkNames().containsValue("o4jt-h"));
            assertFalse(p.linkNames().containsValue("o4jt-br"));
            assertTrue(p.linkNames().containsValue(A));
        }
    }

    @Test
    void linksAddressesAndRouteLookupMatchIp() throws Exception {
        namespaces.ip(ns, "link", "set", "lo", "up");
        namespaces.ip(ns, "link", "set", A, "up");
        namespaces.ip(ns, "link", "set", A, "address", "0a:58:64:60:01:01");
        namespaces.ip(ns, "addr", "add", "10.168.0.2/24", "dev", A);
        namespaces.ip(ns, "addr", "add", "10.168.0.9/24", "dev", A);
        namespaces.ip(ns, "route", "add", "default", "via", "10.168.0.1", "dev", A);
        namespaces.ip(ns, "link", "add", "o4jt-br", "type", "bridge");
        try (NetlinkRouteProgrammer p = programmer()) {
            List<Link> links = p.links();
            Link a = links.stream().filter(l -> l.name().equals(A)).findFirst().orElseThrow();
            assertEquals("veth", a.kind());
            assertEquals("0a:58:64:60:01:01", a.mac());
            assertTrue(a.isUp());
            assertEquals(1500, a.mtu());
            assertEquals(p.linkIndex(A), a.index());
            Link lo = links.get(0);
            assertEquals("lo", lo.name());
            assertTrue(lo.isLoopback());
            assertEquals("bridge", links.stream().filter(l -> l.name().equals("o4jt-br")).findFirst().orElseThrow()
                    .kind());

            List<LinkAddress> addresses = p.ipv4Addresses();
            assertEquals(List.of("127.0.0.1/8 dev lo", "10.168.0.2/24 dev " + A, "10.168.0.9/24 dev " + A),
                    addresses.stream().map(LinkAddress::toString).collect(Collectors.toList()));

            Route viaGateway = p.routeGet(ip("192.0.2.7")).orElseThrow();
            assertEquals("192.0.2.7/32 via 10.168.0.1 dev " + A + " src 10.168.0.2", viaGateway.toString());
            Route onLink = p.routeGet(ip("10.168.0.3")).orElseThrow();
            assertEquals(null, onLink.gateway());
            assertEquals(A, onLink.device());
            assertEquals("lo", p.routeGet(ip("10.168.0.9")).orElseThrow().device());

            namespaces.ip(ns, "route", "del", "default");
            assertTrue(p.routeGet(ip("192.0.2.7")).isEmpty(), "no route: empty, not an error");
        }
    }
}
