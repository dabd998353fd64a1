package io.overlay4j.examples;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The flannel walk-through's machines, built from network namespaces with overlay4j's own netlink code:
 *
 * <pre>
 *   c1 (100.96.1.2)                                                     c2 (100.96.2.3)
 *      | eth0                                                                | eth0
 *   docker0 100.96.1.1/24                                           docker0 100.96.2.1/24
 *   host1 ── eth0 10.168.0.2/24 ═══════ underlay veth ═══════ eth0 10.168.0.3/24 ── host2
 * </pre>
 *
 * Hosts forward IP; containers route everything via their bridge. The overlay (a TUN device and the route for
 * {@code 100.96.0.0/16}) is added by the overlay nodes, not here. {@link #close()} deletes the namespaces, which
 * removes every device in them, and is safe to call after a partial build.
 */
public final class WalkthroughTopology implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WalkthroughTopology.class);

    /** The overlay range of the walk-through. */
    public static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("100.96.0.0/16");
    /** Host 1's underlay address. */
    public static final Inet4Address HOST1_IP = Ipv4Prefix.parseAddress("10.168.0.2");
    /** Host 2's underlay address. */
    public static final Inet4Address HOST2_IP = Ipv4Prefix.parseAddress("10.168.0.3");
    /** Host 1's subnet. */
    public static final Ipv4Prefix SUBNET1 = Ipv4Prefix.parse("100.96.1.0/24");
    /** Host 2's subnet. */
    public static final Ipv4Prefix SUBNET2 = Ipv4Prefix.parse("100.96.2.0/24");
    /** Container 1's address. */
    public static final Inet4Address C1_IP = Ipv4Prefix.parseAddress("100.96.1.2");
    /** Container 2's address. */
    public static final Inet4Address C2_IP = Ipv4Prefix.parseAddress("100.96.2.3");
    /** The underlay interface's name on both hosts. */
    public static final String UNDERLAY = "eth0";

    private final String prefix;
    private final List<NetworkNamespace> created = new ArrayList<>();
    private NetworkNamespace host1;
    private NetworkNamespace host2;
    private NetworkNamespace c1;
    private NetworkNamespace c2;

    private WalkthroughTopology(String prefix) {
        this.prefix = prefix;
    }

    /**
     * Builds the topology in namespaces named {@code <prefix>host1}, {@code <prefix>host2}, {@code <prefix>c1} and
     * {@code <prefix>c2}. Refuses to touch namespaces that already exist.
     *
     * @param containerMtu the MTU of the containers' interfaces (the overlay's MTU, e.g. 1472 for udp)
     */
    public static WalkthroughTopology create(String prefix, int containerMtu) throws IOException {
        for (String n : new String[] {"host1", "host2", "c1", "c2"}) {
            if (Files.exists(Path.of("/run/netns", prefix + n))) {
                throw new IOException("network namespace " + prefix + n + " already exists; remove it first "
                        + "(ip netns del " + prefix + n + ") if it is a leftover of an earlier run");
            }
        }
        WalkthroughTopology t = new WalkthroughTopology(prefix);
        try {
            t.build(containerMtu);
            return t;
        } catch (IOException | RuntimeException e) {
            t.close();
            throw e;
        }
    }

    private NetworkNamespace ns(String name) throws IOException {
        NetworkNamespace ns = NetworkNamespace.create(prefix + name);
        created.add(ns);
        return ns;
    }

    private void build(int containerMtu) throws IOException {
        host1 = ns("host1");
        host2 = ns("host2");
        c1 = ns("c1");
        c2 = ns("c2");
        for (NetworkNamespace ns : created) {
            inside(ns, nl -> nl.setLinkUp("lo"));
        }
        // The underlay: one veth pair, one end in each host, both named eth0.
        inside(host1, nl -> {
            nl.createVethPair(UNDERLAY, "o4j-peer");
            nl.moveToNamespace("o4j-peer", host2);
        });
        inside(host2, nl -> nl.renameLink("o4j-peer", UNDERLAY));
        hostSide(host1, HOST1_IP, SUBNET1, c1, C1_IP, containerMtu);
        hostSide(host2, HOST2_IP, SUBNET2, c2, C2_IP, containerMtu);
    }

    private void hostSide(NetworkNamespace host, Inet4Address hostIp, Ipv4Prefix subnet, NetworkNamespace container,
                          Inet4Address containerIp, int containerMtu) throws IOException {
        Inet4Address bridgeIp = subnet.addressAt(1);
        inside(host, nl -> {
            nl.addAddress(UNDERLAY, hostIp, 24);
            nl.setLinkUp(UNDERLAY);
            nl.createBridge("docker0");
            nl.addAddress("docker0", bridgeIp, subnet.length());
            nl.setLinkUp("docker0");
            nl.createVethPair("veth-" + shortName(container), "o4j-cpeer");
            nl.setMtu("veth-" + shortName(container), containerMtu);
            nl.setMaster("veth-" + shortName(container), "docker0");
            nl.setLinkUp("veth-" + shortName(container));
            nl.moveToNamespace("o4j-cpeer", container);
            Files.writeString(Path.of("/proc/sys/net/ipv4/ip_forward"), "1");
        });
        inside(container, nl -> {
            nl.renameLink("o4j-cpeer", "eth0");
            nl.setMtu("eth0", containerMtu);
            nl.addAddress("eth0", containerIp, subnet.length());
            nl.setLinkUp("eth0");
            nl.addRoute(Route.viaGateway(Ipv4Prefix.parse("0.0.0.0/0"), bridgeIp, "eth0"));
        });
    }

    private String shortName(NetworkNamespace ns) {
        return ns.name().substring(prefix.length());
    }

    /** Runs {@code body} with a netlink socket inside {@code ns}. */
    public static void inside(NetworkNamespace ns, NetlinkBody body) throws IOException {
        try {
            ns.call(() -> {
                try (NetlinkRouteProgrammer nl = NetlinkRouteProgrammer.open()) {
                    body.run(nl);
                }
                return null;
            });
        } catch (IOException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException(e);
        }
    }

    /** The IPv4 routes of a namespace's main table, as {@code ip route} prints them. */
    public static List<Route> routes(NetworkNamespace ns) throws IOException {
        List<Route> out = new ArrayList<>();
        inside(ns, nl -> out.addAll(nl.routes()));
        return out;
    }

    /** Host 1, where node 1 runs. */
    public NetworkNamespace host1() {
        return host1;
    }

    /** Host 2, where node 2 runs. */
    public NetworkNamespace host2() {
        return host2;
    }

    /** Container 1. */
    public NetworkNamespace c1() {
        return c1;
    }

    /** Container 2. */
    public NetworkNamespace c2() {
        return c2;
    }

    /** Deletes every namespace this topology created, and so every device in them. Idempotent. */
    @Override
    public void close() {
        for (int i = created.size() - 1; i >= 0; i--) {
            NetworkNamespace ns = created.get(i);
            try {
                ns.delete();
            } catch (IOException | RuntimeException e) {
                log.warn("could not delete network namespace {}: {}", ns.name(), e.toString());
            }
        }
        created.clear();
    }

    /** Work done with a netlink socket inside a namespace. */
    @FunctionalInterface
    public interface NetlinkBody {
        /** Does the work. */
        void run(NetlinkRouteProgrammer nl) throws IOException;
    }
}
