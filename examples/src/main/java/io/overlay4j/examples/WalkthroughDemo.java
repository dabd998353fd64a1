package io.overlay4j.examples;

import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.Route;
import io.overlay4j.tun.FdbEntry;
import io.overlay4j.tun.Neighbour;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.TunCapabilities;
import io.overlay4j.tun.VxlanLink;
import io.overlay4j.vxlan.VxlanBackend;
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
 * host on the embedded allocator, then a ping and a TCP stream from c1 to c2 across the overlay. Everything it
 * creates is removed at the end, on failure and on Ctrl-C.
 *
 * <p>Options: {@code --backend udp|vxlan|host-gw} (default udp, the walk-through's),
 * {@code --vxlan-dataplane=kernel|userspace|auto} (vxlan only, default kernel: the kernel's flannel.1, or overlay4j's
 * TUN data plane speaking the same VXLAN), {@code --seconds N} (TCP stream length, default 5), {@code --prefix P}
 * (namespace name prefix, default {@code o4j-}), {@code --offloads=false} (userspace data planes only: the plain data
 * path, one packet per system call; by default udp and userspace vxlan nodes run with offloads: TUN TSO/coalescing,
 * UDP GSO/GRO, each falling back on its own where the kernel refuses it). With vxlan and host-gw it prints the kernel
 * objects the backend made (the vxlan device or the TUN, neighbours, FDB entries, routes) next to the route tables.
 */
public final class WalkthroughDemo {
    private static final PrintStream out = System.out;
    private static final String USAGE = "usage: WalkthroughDemo [--backend udp|vxlan|host-gw] "
            + "[--vxlan-dataplane=kernel|userspace|auto] [--seconds N] [--prefix P] [--offloads=true|false]";

    private WalkthroughDemo() {
    }

    /** Runs the demo; exits non-zero if any step fails. */
    public static void main(String[] args) throws Exception {
        int seconds = 5;
        String prefix = "o4j-";
        boolean offloads = true;
        boolean offloadsGiven = false;
        BackendChoice backend = BackendChoice.UDP;
        VxlanBackend.DataPlane dataPlane = null;
        try {
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--seconds" -> seconds = Integer.parseInt(args[++i]);
                    case "--prefix" -> prefix = args[++i];
                    case "--offloads", "--offloads=true" -> {
                        offloads = true;
                        offloadsGiven = true;
                    }
                    case "--offloads=false", "--no-offloads" -> {
                        offloads = false;
                        offloadsGiven = true;
                    }
                    case "--backend" -> backend = BackendChoice.parse(args[++i]);
                    case "--vxlan-dataplane" -> dataPlane = BackendChoice.vxlanDataPlane(args[++i]);
                    default -> {
                        if (!args[i].startsWith("--vxlan-dataplane=")) {
                            throw new IllegalArgumentException("unknown option " + args[i]);
                        }
                        dataPlane = BackendChoice.vxlanDataPlane(args[i].substring("--vxlan-dataplane=".length()));
                    }
                }
            }
            backend.check(offloadsGiven, dataPlane);
        } catch (IllegalArgumentException | ArrayIndexOutOfBoundsException e) {
            System.err.println(e instanceof ArrayIndexOutOfBoundsException ? "an option needs a value"
                    : e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
        }
        Optional<String> missing = TunCapabilities.unavailabilityCause();
        if (missing.isPresent()) {
            System.err.println("overlay4j cannot run here: " + missing.get());
            System.exit(1);
        }
        Demo demo = new Demo(prefix, seconds, offloads, backend, dataPlane);
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
        private final BackendChoice backend;
        private final VxlanBackend.DataPlane dataPlane;
        private final boolean userspaceVxlan;
        private Path dir;
        private WalkthroughTopology topology;
        private LocalSubnetAllocator allocator;
        private OverlayNode node1;
        private OverlayNode node2;
        private boolean cleaned;

        Demo(String prefix, int seconds, boolean offloads, BackendChoice backend, VxlanBackend.DataPlane dataPlane) {
            this.prefix = prefix;
            this.seconds = seconds;
            this.offloads = offloads;
            this.backend = backend;
            this.dataPlane = dataPlane;
            this.userspaceVxlan = dataPlane == VxlanBackend.DataPlane.USERSPACE;
        }

        boolean run() throws Exception {
            dir = Files.createTempDirectory("overlay4j-demo");
            NetworkConfig config = NetworkConfig.parse(backend.config("100.96.0.0/16"));
            int mtu = backend.containerMtu(1500);
            step("1. The machines: host1 10.168.0.2 and host2 10.168.0.3 on one underlay, a docker0 bridge on each,"
                    + " container c1 100.96.1.2 behind host1 and c2 100.96.2.3 behind host2");
            topology = WalkthroughTopology.create(prefix, mtu);
            out.printf("   namespaces %shost1 %shost2 %sc1 %sc2 are up%n", prefix, prefix, prefix, prefix);

            step("2. The network config, stored by the embedded allocator in " + dir.resolve("leases.json"));
            out.println("   " + config.toJson());
            allocator = LocalSubnetAllocator.builder().file(dir.resolve("leases.json")).network(config).build();

            step("3. One overlay4j node per host (" + backend.describe(dataPlane) + "): " + switch (backend) {
                case UDP -> "lease a subnet, open flannel0, route 100.96.0.0/16 into it";
                case VXLAN -> userspaceVxlan
                        ? "lease a subnet, open the TUN flannel.1 and route 100.96.0.0/16 into it; overlay4j speaks "
                        + "VXLAN (VNI 1, port 8472) to the peers' VtepMACs itself"
                        : "lease a subnet, create the kernel's flannel.1 (VXLAN, VNI 1, port 8472), and per "
                        + "peer a neighbour, an FDB entry and a route";
                case HOST_GW -> "lease a subnet, and per peer a route to its subnet via its host";
            });
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
            if (backend != BackendChoice.UDP) {
                step("4b. The kernel objects the " + backend.type + " backend made");
                printKernelObjects("host1", topology.host1());
                printKernelObjects("host2", topology.host2());
            }

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

            step("7. Counters" + switch (backend) {
                case UDP -> "";
                case VXLAN -> userspaceVxlan ? "" : " (the kernel's, of flannel.1; bytes are inner IP packets)";
                case HOST_GW -> " (none: host-gw forwards in the kernel without a device of its own)";
            });
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
                    .backend(backend.create(offloads, dataPlane))
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

        /** The vxlan device and its neighbours and FDB entries, and the host's overlay routes, read over rtnetlink. */
        private void printKernelObjects(String title, NetworkNamespace ns) throws IOException {
            out.println("   " + title + ":");
            WalkthroughTopology.inside(ns, nl -> {
                if (backend == BackendChoice.VXLAN && nl.link("flannel.1").map(l -> l.kind().equals("tun"))
                        .orElse(false)) {
                    out.println("     device     flannel.1 TUN, mtu " + nl.mtu("flannel.1") + " (VXLAN in userspace)");
                    out.println("     addresses  " + nl.addresses("flannel.1"));
                    out.println("     (no neighbours, no FDB entries: the node addresses each peer's VtepMAC itself)");
                } else if (backend == BackendChoice.VXLAN) {
                    VxlanLink dev = nl.vxlanLink("flannel.1").orElse(null);
                    out.println("     device     " + (dev == null ? "flannel.1 missing" : dev.toString()
                            .replace(" dev if" + dev.underlayIndex(), " dev " + WalkthroughTopology.UNDERLAY)));
                    out.println("     addresses  " + nl.addresses("flannel.1"));
                    for (Neighbour n : nl.neighbours("flannel.1")) {
                        out.println("     neighbour  " + n);
                    }
                    for (FdbEntry f : nl.fdbEntries("flannel.1")) {
                        out.println("     fdb        " + f);
                    }
                }
                for (Route r : nl.routes()) {
                    if (!r.kernel() && WalkthroughTopology.NETWORK.contains(r.destination())) {
                        out.println("     route      " + r);
                    }
                }
            });
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
