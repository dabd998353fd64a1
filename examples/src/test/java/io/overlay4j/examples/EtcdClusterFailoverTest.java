package io.overlay4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayNode;
import io.overlay4j.OverlayNode.State;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.tun.testing.TestNamespaces;
import io.overlay4j.udp.UdpBackend;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Two hosts forward traffic through the udp overlay (real TUN devices and sockets in namespaces) while their
 * three-member etcd cluster loses its leader, or its quorum. The data plane never touches etcd, so nothing is lost
 * between hosts that know each other; the control plane reports the trouble and recovers.
 *
 * <p>Nodes run in their host's namespace through {@code NetworkNamespace.threadFactory()}, and each host has its own
 * allocator, built on the test's thread in the root namespace, where etcd listens.
 */
@Timeout(120)
class EtcdClusterFailoverTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";
    private static final String PREFIX = "/coreos.com/network";
    private static final Pattern RECEIVED = Pattern.compile("(\\d+) packets transmitted, (\\d+) received");
    private static final Pattern KEY = Pattern.compile("\"key\":\"");
    private static final Pattern LEASE = Pattern.compile("\"lease\":[1-9]");

    @RegisterExtension
    final EtcdServerExtension cluster = EtcdServerExtension.cluster(3);
    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    private WalkthroughTopology topology;
    /** What the test opened, last first. */
    private final Deque<AutoCloseable> closeables = new ArrayDeque<>();

    @BeforeEach
    void setUp() throws Exception {
        Walkthroughs.requireHosts();
        cluster.etcdctl("put", PREFIX + "/config", CONFIG);
        topology = WalkthroughTopology.create(Walkthroughs.uniquePrefix("o4jc"), 1472);
    }

    @AfterEach
    void tearDown() throws Exception {
        Walkthroughs.closeAll(closeables);
        Walkthroughs.closeAll(topology);
    }

    private EtcdSubnetAllocator allocator() {
        EtcdSubnetAllocator a = EtcdSubnetAllocator.builder().endpoints(cluster.endpoints())
                .requestTimeout(Duration.ofSeconds(3)).build();
        closeables.push(a);
        return a;
    }

    private OverlayNode.Builder node(NetworkNamespace host, String underlay, Events events) {
        return OverlayNode.builder().allocator(allocator()).backend(UdpBackend.builder().build())
                .underlayInterface(underlay).threadFactory(host.threadFactory())
                .retryInterval(Duration.ofMillis(200)).listener(events);
    }

    private OverlayNode started(OverlayNode.Builder b) {
        OverlayNode n = b.build().start();
        closeables.push(n);
        return n;
    }

    @Test
    void leaderKilledWhileTwoHostsForwardAndAThirdJoins() throws Exception {
        Events e1 = new Events();
        Events e2 = new Events();
        OverlayNode n1 = started(node(topology.host1(), WalkthroughTopology.UNDERLAY, e1)
                .preferredSubnet(WalkthroughTopology.SUBNET1));
        OverlayNode n2 = started(node(topology.host2(), WalkthroughTopology.UNDERLAY, e2)
                .preferredSubnet(WalkthroughTopology.SUBNET2));
        await(() -> n1.peers().size() == 1 && n2.peers().size() == 1, "the two hosts to learn each other", 10);

        Process ping = ping(120); // 12 s across the kill, the election and the join
        Thread.sleep(2000);
        int leader = cluster.leader();
        long killed = System.nanoTime();
        cluster.kill(leader);

        // A third host joins at once; it keeps trying through the election.
        NetworkNamespace host3 = namespaces.create();
        namespaces.ip(host3, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p");
        namespaces.ip(host3, "addr", "add", "10.168.0.9/24", "dev", "eth0");
        for (String dev : List.of("lo", "eth0", "eth0p")) {
            namespaces.ip(host3, "link", "set", dev, "up");
        }
        Events e3 = new Events();
        OverlayNode n3 = node(host3, "eth0", e3).build();
        closeables.push(n3);
        CompletableFuture<OverlayNode> joining = n3.startAsync();
        Lease third = joining.get(30, TimeUnit.SECONDS).lease();
        double joinedAfter = (System.nanoTime() - killed) / 1e9;
        await(() -> knows(n1, third) && knows(n2, third), "both hosts to learn the third", 30);
        double learnedAfter = (System.nanoTime() - killed) / 1e9;
        int newLeader = cluster.leader();

        int[] result = pingResult(ping);
        System.out.printf("cluster: leader m%d killed while c1 pinged c2; m%d leads now; the third host joined"
                        + " %.2f s after the kill (%d start retries) and both hosts knew it after %.2f s; ping %d/%d;"
                        + " host1 %s, host2 %s%n", leader, newLeader, joinedAfter, e3.retries.size(), learnedAfter,
                result[1], result[0], e1.states, e2.states);
        assertNotEquals(leader, newLeader);
        assertEquals(result[0], result[1], "packets lost between hosts that knew each other");
        assertEquals(WalkthroughTopology.SUBNET1, n1.lease().subnet());
        assertEquals(WalkthroughTopology.SUBNET2, n2.lease().subnet());
        for (Events e : List.of(e1, e2, e3)) {
            assertEquals(1, e.subnets.size(), "one subnet, never moved: " + e.subnets);
            assertTrue(e.states.stream().noneMatch(s -> s.contains("LEASE_LOST")), e.states.toString());
        }
        assertOneKeyPerHost(Set.of("10.168.0.2", "10.168.0.3", "10.168.0.9"));
    }

    @Test
    void quorumLostAndRegainedWhileTwoHostsForward() throws Exception {
        Events e1 = new Events();
        Events e2 = new Events();
        OverlayNode n1 = started(node(topology.host1(), WalkthroughTopology.UNDERLAY, e1)
                .preferredSubnet(WalkthroughTopology.SUBNET1));
        OverlayNode n2 = started(node(topology.host2(), WalkthroughTopology.UNDERLAY, e2)
                .preferredSubnet(WalkthroughTopology.SUBNET2));
        await(() -> n1.peers().size() == 1 && n2.peers().size() == 1, "the two hosts to learn each other", 10);

        Process ping = ping(300); // 30 s: the loss, the degraded time, the return
        Thread.sleep(1000);
        int survivor = (cluster.leader() + 1) % 3;
        long lost = System.nanoTime();
        for (int m = 0; m < 3; m++) {
            if (m != survivor) {
                cluster.kill(m);
            }
        }
        await(() -> n1.state() == State.DEGRADED && n2.state() == State.DEGRADED, "both nodes to be DEGRADED", 30);
        double degradedAfter = (System.nanoTime() - lost) / 1e9;
        // The survivor may believe in the dead leader for a moment and take a watch back; once it knows better (a few
        // election timeouts) it refuses watches that need a leader, and the nodes stay degraded.
        Thread.sleep(6000);
        await(() -> n1.state() == State.DEGRADED && n2.state() == State.DEGRADED, "both nodes DEGRADED for good", 30);
        cluster.start((survivor + 1) % 3);
        long back = System.nanoTime();
        await(() -> n1.state() == State.READY && n2.state() == State.READY, "both nodes to be READY again", 30);
        double readyAfter = (System.nanoTime() - back) / 1e9;

        int[] result = pingResult(ping);
        System.out.printf("cluster: quorum lost; both nodes DEGRADED after %.2f s; one member back, both READY %.2f s"
                        + " later; ping c1->c2 %d/%d throughout; host1 %s%n", degradedAfter, readyAfter, result[1],
                result[0], e1.states);
        assertEquals(result[0], result[1], "packets lost while etcd had no quorum");
        assertTrue(e1.causes.stream().allMatch(c -> c.kind() == OverlayException.Kind.STORE_UNAVAILABLE),
                e1.causes.toString());
        assertEquals(WalkthroughTopology.SUBNET1, n1.lease().subnet());
        assertEquals(WalkthroughTopology.SUBNET2, n2.lease().subnet());
        assertOneKeyPerHost(Set.of("10.168.0.2", "10.168.0.3"));
    }

    /** c1 pings c2 every 0.1 s; a reply may be late (5 s) on a loaded machine, but none may be missing. */
    private Process ping(int count) throws Exception {
        return new ProcessBuilder("ip", "netns", "exec", topology.c1().name(), "ping", "-n", "-q", "-c",
                Integer.toString(count), "-i", "0.1", "-W", "5", WalkthroughTopology.C2_IP.getHostAddress())
                .redirectErrorStream(true).start();
    }

    private static int[] pingResult(Process ping) throws Exception {
        assertTrue(ping.waitFor(60, TimeUnit.SECONDS), "ping did not finish");
        String out = new String(ping.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        Matcher m = RECEIVED.matcher(out);
        assertTrue(m.find(), out);
        return new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))};
    }

    /** etcd holds one key per host, each with its host's address and an etcd lease: none lost, none doubled. */
    private void assertOneKeyPerHost(Set<String> hosts) {
        String json = cluster.etcdctl("get", "--prefix", PREFIX + "/subnets", "-w", "json");
        String values = cluster.etcdctl("get", "--prefix", PREFIX + "/subnets", "--print-value-only");
        Set<String> ips = new TreeSet<>();
        for (String line : values.split("\n")) {
            Matcher m = Pattern.compile("\"PublicIP\":\"([^\"]+)\"").matcher(line);
            if (m.find()) {
                assertTrue(ips.add(m.group(1)), "two keys for " + m.group(1) + ":\n" + values);
            }
        }
        assertEquals(new TreeSet<>(hosts), ips, values);
        // etcdctl's JSON leaves out a lease of 0: every key must come with a non-zero one.
        assertEquals(hosts.size(), count(KEY, json), json);
        assertEquals(hosts.size(), count(LEASE, json), "a key without an etcd lease: " + json);
    }

    private static int count(Pattern p, String text) {
        Matcher m = p.matcher(text);
        int n = 0;
        while (m.find()) {
            n++;
        }
        return n;
    }

    private static boolean knows(OverlayNode node, Lease peer) {
        return node.peers().stream().anyMatch(l -> l.subnet().equals(peer.subnet()));
    }

    private static void await(BooleanSupplier condition, String what, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(20);
        }
    }

    /** What a node reported. */
    static final class Events implements OverlayNode.Listener {
        final List<String> states = new CopyOnWriteArrayList<>();
        final List<OverlayException> causes = new CopyOnWriteArrayList<>();
        final List<Ipv4Prefix> subnets = new CopyOnWriteArrayList<>();
        final List<OverlayException> retries = new CopyOnWriteArrayList<>();

        @Override
        public void stateChanged(State previous, State current, OverlayException cause) {
            states.add(previous + "->" + current);
            if (cause != null) {
                causes.add(cause);
            }
        }

        @Override
        public void subnetChanged(Lease previous, Lease current) {
            subnets.add(current.subnet());
        }

        @Override
        public void startRetrying(OverlayException cause, Duration delay) {
            retries.add(cause);
        }
    }
}
