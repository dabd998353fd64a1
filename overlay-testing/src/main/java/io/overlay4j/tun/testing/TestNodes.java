package io.overlay4j.tun.testing;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Backend;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LocalSubnetAllocator;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayNode;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import java.io.IOException;
import java.net.Inet4Address;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.function.BooleanSupplier;

/**
 * {@link OverlayNode}s on the hosts of a {@link TestUnderlay}, sharing one file-backed {@link LocalSubnetAllocator}:
 * what a backend's kernel test needs around the backend. Host {@code n} runs its node in its namespace on
 * {@link TestUnderlay#DEVICE}, asks for the subnet {@link #subnet(int) 100.96.n.0/24} (so the network config's
 * {@code Network} should be {@code 100.96.0.0/16}) and writes its subnet file to {@code <dir>/host<n>.env}.
 * {@link #close()} closes the nodes, the netlink sockets handed out and the allocator; the namespaces themselves go
 * with the {@link TestNamespaces} the underlay was built in.
 *
 * <pre>{@code
 * nodes = TestNodes.create(namespaces, 2, tempDir, "ping");
 * nodes.network("{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}");
 * nodes.start(1, VxlanBackend.builder().build());
 * TestNodes.await("route to host 2", () -> TestNodes.quietly(() -> nodes.netlink(1).routes().size() > 1));
 * }</pre>
 */
public final class TestNodes implements AutoCloseable {
    /** How long {@link #await} waits: generous, for loaded CI machines. */
    public static final Duration WAIT = Duration.ofSeconds(20);

    private final TestUnderlay lan;
    private final Path dir;
    private final Map<Integer, OverlayNode> nodes = new TreeMap<>();
    private final List<NetlinkRouteProgrammer> programmers = new ArrayList<>();
    private LocalSubnetAllocator allocator;

    /**
     * @param lan the hosts
     * @param dir where the lease file ({@code leases.json}) and the subnet files go, e.g. the test's {@code @TempDir}
     */
    public TestNodes(TestUnderlay lan, Path dir) {
        this.lan = requireNonNull(lan, "lan");
        this.dir = requireNonNull(dir, "dir");
    }

    /**
     * Checks that the test can run ({@link Requirements#requireKernelNetworking()}, then each of {@code binaries}
     * with {@link Requirements#requireBinary}), then builds a {@link TestUnderlay} of {@code hosts} hosts in
     * {@code namespaces} with nodes on it.
     *
     * @param dir where the lease file and the subnet files go, e.g. the test's {@code @TempDir}
     */
    public static TestNodes create(TestNamespaces namespaces, int hosts, Path dir, String... binaries)
            throws IOException {
        Requirements.requireKernelNetworking();
        for (String b : binaries) {
            Requirements.requireBinary(b);
        }
        return new TestNodes(TestUnderlay.create(namespaces, hosts), dir);
    }

    /** The hosts. */
    public TestUnderlay lan() {
        return lan;
    }

    /**
     * Creates the allocator for {@code config} (a flannel network config in JSON) on {@code <dir>/leases.json}, which
     * it polls every 100 ms; call before {@link #start}. Calling it again closes the previous allocator first.
     */
    public LocalSubnetAllocator network(String config) {
        if (allocator != null) {
            allocator.close();
        }
        allocator = LocalSubnetAllocator.builder().file(dir.resolve("leases.json"))
                .network(NetworkConfig.parse(config)).pollInterval(Duration.ofMillis(100)).build();
        return allocator;
    }

    /** The allocator {@link #network} created. */
    public LocalSubnetAllocator allocator() {
        if (allocator == null) {
            throw new IllegalStateException("no network yet: call network(config) first");
        }
        return allocator;
    }

    /** Starts a node with {@code backend} on host {@code host} (see the class comment), and keeps it. */
    public OverlayNode start(int host, Backend backend) throws Exception {
        LocalSubnetAllocator a = allocator();
        OverlayNode node = lan.host(host).call(() -> OverlayNode.builder()
                .allocator(a)
                .backend(backend)
                .underlayInterface(TestUnderlay.DEVICE)
                .subnetFile(dir.resolve("host" + host + ".env"))
                .preferredSubnet(subnet(host))
                .build()
                .start());
        nodes.put(host, node);
        return node;
    }

    /** Keeps a node started by the test itself on {@code host}, so that {@link #close()} closes it. */
    public void put(int host, OverlayNode node) {
        nodes.put(host, requireNonNull(node, "node"));
    }

    /** The node running on {@code host}, or null. */
    public OverlayNode get(int host) {
        return nodes.get(host);
    }

    /** Forgets the node of {@code host} without closing it, and returns it (or null). */
    public OverlayNode remove(int host) {
        return nodes.remove(host);
    }

    /** Closes the node of {@code host}, if there is one. */
    public void stop(int host) {
        OverlayNode n = nodes.remove(host);
        if (n != null) {
            n.close();
        }
    }

    /** A netlink socket in host {@code host}'s namespace, closed by {@link #close()}. */
    public NetlinkRouteProgrammer netlink(int host) throws Exception {
        NetlinkRouteProgrammer p = lan.host(host).call(NetlinkRouteProgrammer::open);
        programmers.add(p);
        return p;
    }

    /** The subnet host {@code host} asks for: {@code 100.96.<host>.0/24}. */
    public static Ipv4Prefix subnet(int host) {
        return Ipv4Prefix.parse("100.96." + host + ".0/24");
    }

    /** The network address of {@link #subnet(int)}: {@code 100.96.<host>.0}. */
    public static Inet4Address base(int host) {
        return subnet(host).network();
    }

    /**
     * Waits until {@code condition} holds, checking every 50 ms.
     *
     * @throws AssertionError naming {@code what} if it does not within {@link #WAIT}
     */
    public static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within " + WAIT.toSeconds() + " s: " + what);
            }
            Thread.sleep(50);
        }
    }

    /** {@code c}'s answer, or false if it throws: for {@link #await} conditions that read kernel state. */
    public static boolean quietly(Callable<Boolean> c) {
        try {
            return c.call();
        } catch (Exception e) {
            return false;
        }
    }

    /** Closes the nodes, then the netlink sockets, then the allocator. */
    @Override
    public void close() {
        for (OverlayNode n : nodes.values()) {
            n.close();
        }
        nodes.clear();
        for (NetlinkRouteProgrammer p : programmers) {
            p.close();
        }
        programmers.clear();
        if (allocator != null) {
            allocator.close();
            allocator = null;
        }
    }
}
