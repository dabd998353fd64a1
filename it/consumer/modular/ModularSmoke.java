import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.overlay4j.Backends;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.micrometer.OverlayNodeMetrics;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.TunCapabilities;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * overlay4j's jars as Java modules: run by scripts/check-consumer.sh with the consumer's runtime dependencies on the
 * module path ({@code java -p <jars> --add-modules ALL-MODULE-PATH ModularSmoke.java}). Checks the module names,
 * the qualified exports and that the backend registry finds the three backends as services, then (as root) starts a
 * node in a new network namespace: the udp backend comes from the registry, the kernel calls go through JNA, and its
 * Micrometer meters read (micrometer-core as an automatic module).
 */
public final class ModularSmoke {
    public static void main(String[] args) throws Exception {
        Map<String, Class<?>> expected = Map.of(
                "io.overlay4j", OverlayNode.class,
                "io.overlay4j.tun", NetworkNamespace.class,
                "io.overlay4j.udp", Class.forName("io.overlay4j.udp.UdpBackend"),
                "io.overlay4j.vxlan", Class.forName("io.overlay4j.vxlan.VxlanBackend"),
                "io.overlay4j.hostgw", Class.forName("io.overlay4j.hostgw.HostGwBackend"),
                "io.overlay4j.etcd", Class.forName("io.overlay4j.etcd.EtcdSubnetAllocator"),
                "io.overlay4j.micrometer", OverlayNodeMetrics.class);
        for (Map.Entry<String, Class<?>> e : expected.entrySet()) {
            Module m = e.getValue().getModule();
            check(m.isNamed() && m.getName().equals(e.getKey()), e.getValue() + " is in module " + m);
        }
        Module api = OverlayNode.class.getModule();
        Module tun = NetworkNamespace.class.getModule();
        Module udp = expected.get("io.overlay4j.udp").getModule();
        Module vxlan = expected.get("io.overlay4j.vxlan").getModule();
        Module etcd = expected.get("io.overlay4j.etcd").getModule();
        check(!api.isExported("io.overlay4j.internal"), "io.overlay4j.internal is exported to everyone");
        check(!api.isExported("io.overlay4j.internal", etcd), "io.overlay4j.internal is exported to overlay-etcd");
        check(api.isExported("io.overlay4j.internal", udp), "io.overlay4j.internal is not exported to overlay-udp");
        check(api.isExported("io.overlay4j.internal", vxlan), "io.overlay4j.internal is not exported to vxlan");
        check(!tun.isExported("io.overlay4j.tun.internal"), "io.overlay4j.tun.internal is exported to everyone");
        check(tun.isExported("io.overlay4j.tun.internal", udp), "io.overlay4j.tun.internal is not exported to udp");
        check(!udp.isExported("io.overlay4j.udp.internal"), "io.overlay4j.udp.internal is exported");
        System.out.println("modules: " + expected.keySet() + " named, internal packages exported only as declared");
        // The registry finds every backend through the modules' uses/provides clauses (META-INF/services entries of
        // named modules do not count).
        check(Backends.types().containsAll(Set.of("udp", "vxlan", "host-gw")), "backends: " + Backends.types());
        System.out.println("backends as services: " + Backends.types());

        if (!"root".equals(System.getProperty("user.name"))) {
            check(!"true".equals(System.getenv("CI")), "CI=true but the node part needs root");
            System.out.println("not root: the node part is skipped");
            return;
        }
        check(TunCapabilities.unavailabilityCause().isEmpty(), "TUN: " + TunCapabilities.unavailabilityCause());
        String name = "o4jm-" + ProcessHandle.current().pid();
        Path dir = Files.createTempDirectory("overlay4j-modular");
        NetworkNamespace ns = NetworkNamespace.create(name);
        try {
            try (NetlinkRouteProgrammer rp = ns.call(NetlinkRouteProgrammer::open)) {
                rp.createVethPair("o4jm-a", "o4jm-b");
                rp.addAddress("o4jm-a", Ipv4Prefix.parseAddress("10.168.0.2"), 24);
                rp.setLinkUp("o4jm-a");
                rp.setLinkUp("o4jm-b");
            }
            NetworkConfig config = NetworkConfig.parse(
                    "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}");
            try (LocalSubnetAllocator allocator = LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                         .network(config).build();
                 OverlayNode node = ns.call(() -> OverlayNode.builder().allocator(allocator)
                         .underlayInterface("o4jm-a").subnetFile(dir.resolve("subnet.env")).build().start());
                 NetlinkRouteProgrammer rp = ns.call(NetlinkRouteProgrammer::open)) {
                check(rp.linkIndex("flannel0") > 0, "no flannel0");
                SimpleMeterRegistry registry = new SimpleMeterRegistry();
                try (OverlayNodeMetrics metrics = new OverlayNodeMetrics(node)) {
                    metrics.bindTo(registry);
                    check(registry.get("overlay4j.node.state").tag("state", "ready").gauge().value() == 1.0,
                            "node state meter: " + registry.getMeters());
                }
                check(Files.readString(dir.resolve("subnet.env")).contains("FLANNEL_SUBNET="), "no subnet file");
                System.out.println("node in module mode: subnet " + node.lease().subnet() + ", mtu " + node.mtu());
            }
        } finally {
            ns.delete();
            try (Stream<Path> files = Files.walk(dir)) {
                files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new AssertionError(message);
        }
    }
}
