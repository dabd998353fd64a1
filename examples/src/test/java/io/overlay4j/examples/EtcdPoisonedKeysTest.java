package io.overlay4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.OverlayNode;
import io.overlay4j.etcd.EtcdSubnetAllocator;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import io.overlay4j.tun.NetworkNamespace;
import io.overlay4j.udp.UdpBackend;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Issue 12, finding 3: subnet keys written into etcd behind the nodes' backs that do not fit the network config
 * ({@code <container-ip>-32}, {@code 0.0.0.0-0}, {@code 100.96.0.0-16}) or whose value names no usable PublicIP
 * ({@code {}}) are never routed: two running hosts keep exactly each other as peers, traffic between their containers
 * is untouched, and a destination under a {@code {}} key gets the ordinary "no route" answer instead of looping.
 */
@Timeout(90)
class EtcdPoisonedKeysTest {
    private static final String CONFIG = "{\"Network\":\"100.96.0.0/16\",\"Backend\":{\"Type\":\"udp\"}}";
    private static final String SUBNETS = "/coreos.com/network/subnets/";
    private static final Pattern RECEIVED = Pattern.compile("(\\d+) packets transmitted, (\\d+) received");

    @RegisterExtension
    final EtcdServerExtension etcd = new EtcdServerExtension();

    private WalkthroughTopology topology;
    /** What the test opened, last first. */
    private final Deque<AutoCloseable> closeables = new ArrayDeque<>();

    @BeforeEach
    void setUp() throws Exception {
        Walkthroughs.requireHosts();
        etcd.etcdctl("put", "/coreos.com/network/config", CONFIG);
        topology = WalkthroughTopology.create(Walkthroughs.uniquePrefix("o4jp"), 1472);
    }

    @AfterEach
    void tearDown() throws Exception {
        Walkthroughs.closeAll(closeables);
        Walkthroughs.closeAll(topology);
    }

    private OverlayNode start(NetworkNamespace host, Ipv4Prefix subnet, List<String> peerEvents) {
        EtcdSubnetAllocator a = EtcdSubnetAllocator.builder().endpoints(etcd.endpoint()).build();
        closeables.push(a);
        OverlayNode n = OverlayNode.builder().allocator(a).backend(UdpBackend.builder().build())
                .underlayInterface(WalkthroughTopology.UNDERLAY).threadFactory(host.threadFactory())
                .preferredSubnet(subnet).listener(new OverlayNode.Listener() {
                    @Override
                    public void peerAdded(Lease peer) {
                        peerEvents.add("added " + peer.subnet());
                    }

                    @Override
                    public void peerRemoved(Lease peer) {
                        peerEvents.add("removed " + peer.subnet());
                    }
                }).build().start();
        closeables.push(n);
        return n;
    }

    @Test
    void poisonedKeysHaveNoEffectOnARunningNodesPeers() throws Exception {
        List<String> events1 = new CopyOnWriteArrayList<>();
        List<String> events2 = new CopyOnWriteArrayList<>();
        OverlayNode n1 = start(topology.host1(), WalkthroughTopology.SUBNET1, events1);
        OverlayNode n2 = start(topology.host2(), WalkthroughTopology.SUBNET2, events2);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (n1.peers().size() < 1 || n2.peers().size() < 1) {
            assertTrue(System.nanoTime() < deadline, "the hosts did not learn each other");
            Thread.sleep(10);
        }
        String thief = "{\"PublicIP\":\"10.168.0.9\",\"PublicIPv6\":null}";
        String c2 = WalkthroughTopology.C2_IP.getHostAddress();
        etcd.etcdctl("put", SUBNETS + c2 + "-32", thief);       // would steal c2's traffic
        etcd.etcdctl("put", SUBNETS + "0.0.0.0-0", thief);      // would swallow every unleased destination
        etcd.etcdctl("put", SUBNETS + "100.96.0.0-16", thief);  // the same, from inside the network
        etcd.etcdctl("put", SUBNETS + "100.96.7.0-24", "{}");   // PublicIP 0.0.0.0: would loop datagrams
        etcd.etcdctl("put", SUBNETS + "100.96.8.0-24", "{\"PublicIP\":\"127.0.0.1\"}");

        String out = ping(c2, 20);
        Matcher m = RECEIVED.matcher(out);
        assertTrue(m.find(), out);
        assertEquals("20", m.group(2), "c1 -> c2 must be untouched:\n" + out);
        // flannel answers no ICMP with ICMP, so a TCP connect shows the "no route" answer: an ICMP net-unreachable
        // from flannel0 ends it at once, where a stolen route would time out or loop.
        long before = n1.stats().drops(DropReason.NO_ROUTE);
        InetSocketAddress unleased = new InetSocketAddress(Ipv4Prefix.parseAddress("100.96.7.5"), 80);
        IOException refused = assertThrows(IOException.class, () -> topology.c1().call(() -> {
            try (SocketChannel ch = SocketChannel.open()) {
                ch.socket().connect(unleased, 10_000);
            }
            return null;
        }));
        assertTrue(String.valueOf(refused.getMessage()).contains("unreachable"), refused.toString());
        assertTrue(n1.stats().drops(DropReason.NO_ROUTE) > before, n1.stats().toString());

        assertEquals(List.of(WalkthroughTopology.SUBNET2), n1.peers().stream().map(Lease::subnet).toList());
        assertEquals(List.of(WalkthroughTopology.SUBNET1), n2.peers().stream().map(Lease::subnet).toList());
        assertEquals(List.of("added " + WalkthroughTopology.SUBNET2), events1, "no peer event from poisoned keys");
        assertEquals(List.of("added " + WalkthroughTopology.SUBNET1), events2);
        assertEquals(OverlayNode.State.READY, n1.state());
        System.out.printf("poisoned keys: 5 written; c1 -> c2 %s/20; peers of host1 %s; connect to an unleased"
                + " destination: %s%n", m.group(2), n1.peers().stream().map(Lease::subnet).toList(),
                refused.getMessage());
    }

    private String ping(String to, int count) throws Exception {
        Process p = new ProcessBuilder("ip", "netns", "exec", topology.c1().name(), "ping", "-n", "-c",
                Integer.toString(count), "-i", "0.2", "-W", "5", to).redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "ping did not finish");
        return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }
}
