package io.overlay4j.tun.testing;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.tun.NetworkNamespace;
import java.io.IOException;
import java.net.Inet4Address;
import java.util.ArrayList;
import java.util.List;

/**
 * Hosts on one L2 network, built in namespaces of a {@link TestNamespaces} (so they are removed after the test): a
 * switch namespace holding a bridge, and per host a namespace whose {@code eth0} (a veth into the bridge) has
 * {@code 10.168.0.<1 + n>/24}, with loopback up and IPv4 forwarding on. Host {@code n} (1-based) is
 * {@link #host(int)}; its address {@link #address(int)}: host 1 is {@code 10.168.0.2}, host 2 {@code 10.168.0.3}, as in
 * the flannel walk-through.
 */
public final class TestUnderlay {
    /** The underlay device's name in every host. */
    public static final String DEVICE = "eth0";

    private final TestNamespaces namespaces;
    private final NetworkNamespace lan;
    private final List<NetworkNamespace> hosts = new ArrayList<>();

    private TestUnderlay(TestNamespaces namespaces, NetworkNamespace lan) {
        this.namespaces = namespaces;
        this.lan = lan;
    }

    /** Builds the switch and {@code hosts} hosts. */
    public static TestUnderlay create(TestNamespaces namespaces, int hosts) throws IOException {
        requireNonNull(namespaces, "namespaces");
        NetworkNamespace lan = namespaces.createWithLoopback();
        namespaces.ip(lan, "link", "add", "br0", "type", "bridge");
        namespaces.ip(lan, "link", "set", "br0", "up");
        TestUnderlay u = new TestUnderlay(namespaces, lan);
        for (int i = 0; i < hosts; i++) {
            u.addHost();
        }
        return u;
    }

    /** Adds one more host on the switch; returns its number. */
    public int addHost() throws IOException {
        int n = hosts.size() + 1;
        NetworkNamespace host = namespaces.createWithLoopback();
        namespaces.ip(lan, "link", "add", "p" + n, "type", "veth", "peer", "name", DEVICE, "netns", host.name());
        namespaces.ip(lan, "link", "set", "p" + n, "master", "br0", "up");
        namespaces.ip(host, "addr", "add", address(n).getHostAddress() + "/24", "dev", DEVICE);
        namespaces.ip(host, "link", "set", DEVICE, "up");
        namespaces.exec(host, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward");
        hosts.add(host);
        return n;
    }

    /** Host {@code n}, 1-based. */
    public NetworkNamespace host(int n) {
        return hosts.get(n - 1);
    }

    /** Host {@code n}'s underlay address: {@code 10.168.0.<1 + n>}. */
    public static Inet4Address address(int n) {
        return Ipv4Prefix.parseAddress("10.168.0." + (1 + n));
    }

    /** The switch's namespace. */
    public NetworkNamespace lan() {
        return lan;
    }

    /** {@code ip <args>} inside host {@code n}. */
    public String ip(int n, String... args) throws IOException {
        return namespaces.ip(host(n), args);
    }

    /** A command inside host {@code n}. */
    public String exec(int n, String... command) throws IOException {
        return namespaces.exec(host(n), command);
    }
}
