package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.TunOptions;
import io.overlay4j.tun.LinuxTunDevice;
import io.overlay4j.tun.NetlinkRouteProgrammer;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.testing.Packets;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * The child JVM of {@link ForwarderJitKernelTest}, run in the test's namespace: a quiet node (the topology of
 * {@link ForwarderSoloKernelTest}) whose forwarder has warmed up, parked its egress thread and had a second for the
 * JIT to finish, then a few single packets each way, as pings would bring. Prints the JVM's uptime in milliseconds
 * when {@code start()} has returned ({@code STARTED}), just before the first live packet ({@code LIVE}) and after the
 * last ({@code DONE}, before the forwarder closes); exits non-zero if a packet does not arrive.
 */
public final class QuietNodeProbe {
    private QuietNodeProbe() {
    }

    public static void main(String[] args) throws Exception {
        Ipv4Prefix own = Ipv4Prefix.parse("100.96.1.0/24");
        try (LinuxTunDevice tun = LinuxTunDevice.open(TunOptions.defaults().withName("o4jj%d"))) {
            try (NetlinkRouteProgrammer p = NetlinkRouteProgrammer.open()) {
                p.addAddress(tun.name(), Ipv4Prefix.parseAddress("100.96.1.0"), 32);
                p.setLinkUp(tun.name());
                p.addRoute(Route.viaDevice(Ipv4Prefix.parse("100.96.0.0/16"), tun.name()));
            }
            try (UdpSocket socket = UdpSocket.open(new InetSocketAddress("127.0.0.1", 0), UdpSocket.Options.defaults());
                 DatagramChannel peer = DatagramChannel.open(StandardProtocolFamily.INET)
                         .bind(new InetSocketAddress("127.0.0.2", socket.localAddress().getPort()));
                 DatagramChannel app = DatagramChannel.open(StandardProtocolFamily.INET)
                         .bind(new InetSocketAddress("100.96.1.0", 7000))) {
                int port = socket.localAddress().getPort();
                Forwarder forwarder = Forwarder.builder().tun(tun).socket(socket).port(port).ownSubnet(own)
                        .network(Ipv4Prefix.parse("100.96.0.0/16"))
                        .peers(PeerTable.builder().put(ForwarderTest.lease(Ipv4Prefix.parse("100.96.2.0/24"),
                                addr(127, 0, 0, 2)), port).build())
                        .build();
                try (forwarder) {
                    forwarder.start();
                    System.out.println("STARTED " + uptime());
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                    while (!egressParked()) {
                        if (System.nanoTime() > deadline) {
                            throw new IllegalStateException("the egress thread never parked");
                        }
                        Thread.sleep(5);
                    }
                    Thread.sleep(1500); // the JIT finishes what the warm-up queued
                    System.out.println("LIVE " + uptime());
                    System.out.flush();
                    peer.configureBlocking(false);
                    app.configureBlocking(false);
                    ByteBuffer got = ByteBuffer.allocate(2048);
                    for (int i = 0; i < 20; i++) {
                        Thread.sleep(20);
                        app.send(ByteBuffer.wrap(new byte[] {(byte) i, 1}), new InetSocketAddress("100.96.2.3", 9));
                        await(peer, got, "egress packet " + i);
                        Thread.sleep(20);
                        peer.send(ByteBuffer.wrap(Packets.udp(addr(100, 96, 2, 3), 5000, addr(100, 96, 1, 0), 7000,
                                new byte[] {(byte) i, 9})), socket.localAddress());
                        await(app, got, "ingress packet " + i);
                    }
                    System.out.println("DONE " + uptime() + " " + forwarder.stats());
                }
            }
        }
    }

    private static long uptime() {
        return ManagementFactory.getRuntimeMXBean().getUptime();
    }

    private static void await(DatagramChannel ch, ByteBuffer buf, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (ch.receive(buf.clear()) == null) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(what + " did not arrive");
            }
            Thread.sleep(1);
        }
    }

    private static boolean egressParked() {
        return Thread.getAllStackTraces().entrySet().stream().anyMatch(e -> e.getKey().getState()
                == Thread.State.WAITING && Arrays.stream(e.getValue())
                .anyMatch(f -> f.getMethodName().equals("parkEgress")));
    }
}
