package io.overlay4j.examples;

import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.Route;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.TunCapabilities;
import io.overlay4j.udp.UdpBackend;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * Replays the flannel walk-through live: two hosts and two containers in network namespaces, one overlay4j node per
 * host on the embedded allocator, then a ping and a TCP stream from c1 to c2 across the udp overlay. Everything it
 * creates is removed at the end, on failure and on Ctrl-C.
 *
 * <p>Options: {@code --seconds N} (TCP stream length, default 5), {@code --prefix P} (namespace name prefix, default
 * {@code o4j-}), {@code --offloads=false} (the plain data path, one packet per system call; by default the nodes
 * run with offloads: TUN TSO/coalescing, UDP GSO/GRO, each falling back on its own where the kernel refuses it).
 */
public final class WalkthroughDemo {
    private static final PrintStream out = System.out;
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";

    private WalkthroughDemo() {
    }

    /** Runs the demo; exits non-zero if any step fails. */
    public static void main(String[] args) throws Exception {
        int seconds = 5;
        String prefix = "o4j-";
        boolean offloads = true;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--seconds" -> seconds = Integer.parseInt(args[++i]);
                case "--prefix" -> prefix = args[++i];
                case "--offloads", "--offloads=true" -> offloads = true;
                case "--offloads=false", "--no-offloads" -> offloads = false;
                default -> {
                    System.err.println("usage: WalkthroughDemo [--seconds N] [--prefix P] [--offloads=true|false]");
                    System.exit(2);
                }
            }
        }
        Optional<String> missing = TunCapabilities.unavailabilityCause();
        if (missing.isPresent()) {
            System.err.println("overlay4j cannot run here: " + missing.get());
            System.exit(1);
        }
        Demo demo = new Demo(prefix, seconds, offloads);
        Thread hook = new Thread(demo::cleanup, "demo-cleanup");
        Runtime.getRuntime().addShutdownHook(hook);
        boolean ok = false;
        try {
            ok = demo.run();
        } catch (Exception e) {
            System.err.println("demo failed: " + e);
            e.printStackTrace();
        } finally {
            demo.cleanup();
            Runtime.getRuntime().removeShutdownHook(hook);
        }
        System.exit(ok ? 0 : 1);
    }

    private static final class Demo {
        private final String prefix;
        private final int seconds;
        private final boolean offloads;
        private Path dir;
        private WalkthroughTopology topology;
        private LocalSubnetAllocator allocator;
        private OverlayNode node1;
        private OverlayNode node2;
        private boolean cleaned;

        Demo(String prefix, int seconds, boolean offloads) {
            this.prefix = prefix;
            this.seconds = seconds;
            this.offloads = offloads;
        }

        boolean run() throws Exception {
            dir = Files.createTempDirectory("overlay4j-demo");
            NetworkConfig config = NetworkConfig.parse(CONFIG);
            int mtu = 1500 - 28;
            step("1. The machines: host1 10.168.0.2 and host2 10.168.0.3 on one underlay, a docker0 bridge on each,"
                    + " container c1 100.96.1.2 behind host1 and c2 100.96.2.3 behind host2");
            topology = WalkthroughTopology.create(prefix, mtu);
            out.printf("   namespaces %shost1 %shost2 %sc1 %sc2 are up%n", prefix, prefix, prefix, prefix);

            step("2. The network config, stored by the embedded allocator in " + dir.resolve("leases.json"));
            out.println("   " + config.toJson());
            allocator = LocalSubnetAllocator.builder().file(dir.resolve("leases.json")).network(config).build();

            step("3. One overlay4j node per host: lease a subnet, open flannel0, route 100.96.0.0/16 into it");
            node1 = startNode(topology.host1(), "host1", WalkthroughTopology.SUBNET1);
            node2 = startNode(topology.host2(), "host2", WalkthroughTopology.SUBNET2);
            awaitPeers(node1);
            awaitPeers(node2);
            for (OverlayNode n : List.of(node1, node2)) {
                out.printf("   node on %s: lease %s, public IP %s, peers %s%n", n.interfaceName(),
                        n.lease().subnet(), n.publicAddress().getHostAddress(),
                        n.peers().stream().map(l -> l.subnet().toString()).toList());
            }
            out.println("   host1's subnet.env:");
            for (String line : Files.readAllLines(dir.resolve("host1/subnet.env"))) {
                out.println("     " + line);
            }

            step("4. Routing tables");
            printRoutes("c1 (walk-through table b1)", topology.c1());
            printRoutes("node1 = host1 (walk-through table b2)", topology.host1());

            step("5. ping c2 from c1 across the overlay");
            Ping.Result ping = Ping.run(topology.c1(), WalkthroughTopology.C2_IP, 3);
            ping.output().lines().forEach(l -> out.println("   " + l));
            if (ping.received() == 0) {
                out.println("   FAILED: no reply");
                return false;
            }

            step("6. A TCP stream from c1 to c2 for " + seconds + " s, every byte checked");
            TcpStream.Result tcp = TcpStream.run(topology.c1(), topology.c2(), WalkthroughTopology.C2_IP, 5201,
                    Long.MAX_VALUE, Duration.ofSeconds(seconds));
            out.printf("   %,d bytes in %.2f s = %.2f Gb/s, %s%n", tcp.bytesReceived(), tcp.seconds(),
                    tcp.gigabitsPerSecond(), tcp.intact() ? "all bytes intact" : "DATA CORRUPTED OR LOST");

            step("7. Counters");
            out.println("   node1: " + node1.stats());
            out.println("   node2: " + node2.stats());

            step("Summary");
            out.printf("   ping c1 -> c2: %d/3 replies, avg %.3f ms; TCP c1 -> c2: %.2f Gb/s%n", ping.received(),
                    ping.avgMs(), tcp.gigabitsPerSecond());
            return tcp.intact();
        }

        private OverlayNode startNode(NetworkNamespace host, String name, io.overlay4j.Ipv4Prefix subnet)
                throws Exception {
            return host.call(() -> OverlayNode.builder()
                    .allocator(allocator)
                    .backend(UdpBackend.builder().offloads(offloads).build())
                    .underlayInterface(WalkthroughTopology.UNDERLAY)
                    .subnetFile(dir.resolve(name).resolve("subnet.env"))
                    .preferredSubnet(subnet)
                    .releaseOnClose(true)
                    .build()
                    .start());
        }

        private static void awaitPeers(OverlayNode node) throws InterruptedException {
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (node.peers().isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
        }

        private static void printRoutes(String title, NetworkNamespace ns) throws IOException {
            out.println("   " + title + ":");
            for (Route r : WalkthroughTopology.routes(ns)) {
                out.println("     " + r);
            }
        }

        private static void step(String title) {
            out.println();
            out.println(title);
        }

        synchronized void cleanup() {
            if (cleaned) {
                return;
            }
            cleaned = true;
            for (OverlayNode n : new OverlayNode[] {node2, node1}) {
                if (n != null) {
                    try {
                        n.close();
                    } catch (RuntimeException e) {
                        System.err.println("closing a node: " + e);
                    }
                }
            }
            if (allocator != null) {
                allocator.close();
            }
            if (topology != null) {
                topology.close();
            }
            if (dir != null) {
                try (Stream<Path> files = Files.walk(dir)) {
                    files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                } catch (IOException e) {
                    System.err.println("removing " + dir + ": " + e);
                }
            }
            out.println();
            out.println("Cleaned up: nodes stopped, namespaces and devices removed.");
        }
    }
}
