package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.net.InetAddresses;
import io.overlay4j.tun.Link;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import java.net.Inet4Address;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Interface selection as flanneld's, against what rtnetlink reports in a namespace built to trip the old JDK-based
 * choice: a decoy interface (up, with an IPv4 address) listed before eth0, the default route through eth0, eth0 with a
 * link-local address first and a secondary address, and a second data interface reachable only by its own route.
 */
class InterfaceSelectorKernelTest {
    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces("o4ji");

    private NetworkNamespace ns;

    @BeforeEach
    void setUp() throws Exception {
        ns = namespaces.createWithLoopback();
        for (String[] dev : new String[][] {{"decoy0", "192.0.2.5/24"}, {"eth0", "169.254.1.1/16"},
            {"data1", "172.16.5.2/24"}}) {
            // veth pairs (the kernel may lack the dummy driver); the peer ends come after data1 in index order.
            namespaces.ip(ns, "link", "add", dev[0], "type", "veth", "peer", "name", dev[0] + "p");
            namespaces.ip(ns, "addr", "add", dev[1], "dev", dev[0]);
            namespaces.ip(ns, "link", "set", dev[0] + "p", "up");
            namespaces.ip(ns, "link", "set", dev[0], "up");
        }
        namespaces.ip(ns, "addr", "add", "10.168.0.2/24", "dev", "eth0");
        namespaces.ip(ns, "addr", "add", "10.168.0.12/24", "dev", "eth0");
        namespaces.ip(ns, "route", "add", "default", "via", "10.168.0.1", "dev", "eth0");
    }

    private InterfaceSelector.Selected select(Map<String, String> env, String... args) throws Exception {
        Options o = Options.parse(List.of(args), env);
        return ns.call(() -> {
            try (NetlinkRouteProgrammer netlink = NetlinkRouteProgrammer.open()) {
                return InterfaceSelector.of(netlink).select(o);
            }
        });
    }

    private static Inet4Address ip(String s) {
        return (Inet4Address) InetAddresses.forString(s);
    }

    private static void assertSelected(InterfaceSelector.Selected s, String name, String address, String publicIp) {
        assertEquals(name, s.name(), s.toString());
        assertEquals(ip(address), s.address(), s.toString());
        assertEquals(ip(publicIp), s.publicIp(), s.toString());
        assertTrue(s.mtu() > 0);
    }

    @Test
    void theDefaultRoutesInterfaceNotTheFirstListed() throws Exception {
        List<Link> links = ns.call(() -> {
            try (NetlinkRouteProgrammer netlink = NetlinkRouteProgrammer.open()) {
                return netlink.links();
            }
        });
        List<String> names = links.stream().map(Link::name).toList();
        assertTrue(names.indexOf("decoy0") < names.indexOf("eth0"), "the decoy is listed before eth0: " + names);
        // eth0's first address is link-local: flanneld prefers the global one.
        assertSelected(select(Map.of()), "eth0", "10.168.0.2", "10.168.0.2");
    }

    @Test
    void ifaceByNameOrIpFirstMatchWins() throws Exception {
        assertSelected(select(Map.of(), "-iface=10.168.0.12"), "eth0", "10.168.0.12", "10.168.0.12");
        assertSelected(select(Map.of(), "-iface", "nope0", "-iface", "data1"), "data1", "172.16.5.2", "172.16.5.2");
        assertSelected(select(Map.of("FLANNELD_IFACE", "decoy0")), "decoy0", "192.0.2.5", "192.0.2.5");
        // NAT: the interface's address is bound, the public IP published.
        assertSelected(select(Map.of(), "-iface=eth0", "-public-ip=203.0.113.7"), "eth0", "10.168.0.2",
                "203.0.113.7");
        // -public-ip alone finds the interface holding it.
        assertSelected(select(Map.of(), "-public-ip=10.168.0.12"), "eth0", "10.168.0.12", "10.168.0.12");
    }

    @Test
    void ifaceRegexMatchesAddressesThenNames() throws Exception {
        assertSelected(select(Map.of(), "-iface-regex=^10\\.168\\.0\\.12$"), "eth0", "10.168.0.12", "10.168.0.12");
        assertSelected(select(Map.of(), "-iface-regex", "^data1$"), "data1", "172.16.5.2", "172.16.5.2");
        // Addresses are tried before names: "1" matches decoy0's 192.0.2.5 before any name.
        assertSelected(select(Map.of(), "-iface-regex=1"), "decoy0", "192.0.2.5", "192.0.2.5");
        // -iface comes first, then the regexes in order.
        assertSelected(select(Map.of(), "-iface=nope0", "-iface-regex=^zz", "-iface-regex=^eth0$"), "eth0",
                "10.168.0.2", "10.168.0.2");
    }

    @Test
    void ifaceCanReachUsesTheRoute() throws Exception {
        assertSelected(select(Map.of(), "-iface-can-reach=172.16.5.9"), "data1", "172.16.5.2", "172.16.5.2");
        assertSelected(select(Map.of(), "-iface-can-reach=198.51.100.1"), "eth0", "10.168.0.2", "10.168.0.2");
    }

    @Test
    void nothingMatchesIsAClearError() throws Exception {
        assertTrue(noInterface("-iface=nope0", "-iface-regex=^zz")
                .startsWith("no interface matches -iface nope0, -iface-regex ^zz; interfaces: lo:[], "
                        + "decoy0p:[], decoy0:[192.0.2.5], eth0p:[], eth0:[10.168.0.2, 10.168.0.12, 169.254.1.1], "));
        assertTrue(noInterface("-public-ip=203.0.113.7").startsWith("no interface holds -public-ip 203.0.113.7"));
        namespaces.ip(ns, "route", "del", "default");
        assertTrue(noInterface().startsWith("there is no default route"));
    }

    private String noInterface(String... args) {
        Exception e = assertThrows(Exception.class, () -> select(Map.of(), args));
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof InterfaceSelector.NoInterfaceException) {
                return t.getMessage();
            }
        }
        throw new AssertionError("not a NoInterfaceException", e);
    }
}
