package io.overlay4j.vxlan;

import static io.overlay4j.tun.testing.TestNodes.base;
import static io.overlay4j.tun.testing.TestNodes.quietly;
import static io.overlay4j.tun.testing.TestNodes.subnet;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.Route;
import io.overlay4j.tun.FdbEntry;
import io.overlay4j.tun.Neighbour;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.testing.TestNodes;
import io.overlay4j.tun.testing.TestUnderlay;
import io.overlay4j.udp.VxlanLeaseData;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Arrays;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * What the vxlan kernel tests read and check on their {@link TestNodes}: the published leases, the kernel entries of
 * {@code flannel.1} as flannel's {@code handleSubnetEvents} makes them (as our records print them), and traffic.
 */
final class VxlanHosts {
    static final String DEVICE = "flannel.1";

    private final TestNodes nodes;

    VxlanHosts(TestNodes nodes) {
        this.nodes = nodes;
    }

    Lease lease(int host) {
        return nodes.allocator().leases().stream().filter(x -> x.subnet().equals(subnet(host))).findFirst()
                .orElseThrow();
    }

    String vtepMac(int host) {
        return VxlanLeaseData.parse(lease(host).attributes().backendData()).vtepMac();
    }

    /**
     * Reserves three vxlan leases at {@code ghost} whose BackendData no node can use: {@code 100.96.50.0/24} with a
     * malformed VtepMAC, {@code .51} without a VNI, {@code .52} without BackendData.
     */
    void reserveMalformed(Inet4Address ghost) {
        nodes.allocator().reserve(subnet(50), new LeaseAttributes(ghost, null, "vxlan",
                "{\"VNI\":1,\"VtepMAC\":\"zz:zz:zz:zz:zz:zz\"}"));
        nodes.allocator().reserve(subnet(51), new LeaseAttributes(ghost, null, "vxlan",
                "{\"VtepMAC\":\"0a:00:00:00:00:51\"}"));
        nodes.allocator().reserve(subnet(52), new LeaseAttributes(ghost, null, "vxlan", null));
    }

    /** The permanent neighbours for these peers: subnet base → VtepMAC. */
    Set<String> expectedNeighbours(int... peers) {
        return Arrays.stream(peers).mapToObj(p -> base(p).getHostAddress() + " dev " + DEVICE + " lladdr "
                + vtepMac(p) + " PERMANENT").collect(Collectors.toCollection(TreeSet::new));
    }

    /** The FDB entries for these peers: VtepMAC → public address, {@code self permanent}. */
    Set<String> expectedFdb(int... peers) {
        return Arrays.stream(peers).mapToObj(p -> vtepMac(p) + " dev " + DEVICE + " dst "
                + TestUnderlay.address(p).getHostAddress() + " self permanent")
                .collect(Collectors.toCollection(TreeSet::new));
    }

    /** The onlink routes for these peers: {@code <subnet> via <subnet base> dev flannel.1 onlink}. */
    static Set<String> expectedRoutes(int... peers) {
        return Arrays.stream(peers).mapToObj(p -> subnet(p) + " via " + base(p).getHostAddress() + " dev " + DEVICE
                + " onlink").collect(Collectors.toCollection(TreeSet::new));
    }

    static Set<String> neighbours(NetlinkRouteProgrammer nl) throws IOException {
        return nl.neighbours(DEVICE).stream().map(Neighbour::toString).collect(Collectors.toCollection(TreeSet::new));
    }

    static Set<String> fdb(NetlinkRouteProgrammer nl) throws IOException {
        return nl.fdbEntries(DEVICE).stream().map(FdbEntry::toString).collect(Collectors.toCollection(TreeSet::new));
    }

    /** The non-kernel routes via {@code device}. */
    static Set<String> deviceRoutes(NetlinkRouteProgrammer nl, String device) throws IOException {
        return nl.routes().stream().filter(r -> r.device().equals(device) && !r.kernel()).map(Route::toString)
                .collect(Collectors.toCollection(TreeSet::new));
    }

    /** Whether the kernel node on {@code nl}'s host has exactly these peers' neighbour, FDB entry and route. */
    boolean programmedFor(NetlinkRouteProgrammer nl, int... peers) {
        return quietly(() -> neighbours(nl).equals(expectedNeighbours(peers)) && fdb(nl).equals(expectedFdb(peers))
                && deviceRoutes(nl, DEVICE).equals(expectedRoutes(peers)));
    }

    void ping(int from, Inet4Address to) throws IOException {
        String out = nodes.lan().exec(from, "ping", "-c", "2", "-i", "0.2", "-W", "2", to.getHostAddress());
        assertTrue(out.contains(" 0% packet loss"), out);
    }

    /** Sends 4 MiB over TCP from host {@code from} to {@code to}:7001 in host {@code toHost}; checks every byte. */
    void tcp(int from, int toHost, Inet4Address to) throws Exception {
        TestUnderlay lan = nodes.lan();
        byte[] data = new byte[4 << 20];
        new Random(from * 31 + toHost).nextBytes(data);
        ServerSocket server = lan.host(toHost).call(() -> {
            ServerSocket s = new ServerSocket();
            s.bind(new InetSocketAddress(to, 7001));
            return s;
        });
        try (server) {
            CompletableFuture<byte[]> received = CompletableFuture.supplyAsync(() -> {
                try (Socket s = server.accept(); InputStream in = s.getInputStream()) {
                    return in.readAllBytes();
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            lan.host(from).call(() -> {
                try (Socket s = new Socket()) {
                    s.connect(new InetSocketAddress(to, 7001), 5000);
                    try (OutputStream out = s.getOutputStream()) {
                        out.write(data);
                    }
                }
                return null;
            });
            assertArrayEquals(data, received.get(60, TimeUnit.SECONDS), "TCP stream corrupted " + from + " -> "
                    + toHost);
        }
    }
}
