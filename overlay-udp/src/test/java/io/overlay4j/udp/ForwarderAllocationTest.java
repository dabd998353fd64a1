package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.TrafficStats;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import java.lang.management.ManagementFactory;
import io.overlay4j.tun.UdpSocket;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Measures the bytes the forwarder threads allocate per packet, with HotSpot's per-thread allocation counter, after a
 * warm-up: the hot path must allocate nothing (style.md point 10). The in-memory TUNs run in their allocation-free
 * modes (repeated reads, discarded writes) so only the forwarder and its socket calls are measured. Both directions
 * pass the full pipeline: validation, lookup, encapsulation, admission, the node-wide and the per-peer counters.
 * Both threads of each forwarder are counted: either may work on either direction.
 */
class ForwarderAllocationTest {
    private static final int MTU = 1472;

    @Test
    void theHotPathAllocatesNothingPerPacket() throws Exception {
        java.lang.management.ThreadMXBean bean = ManagementFactory.getThreadMXBean();
        assumeTrue(bean instanceof com.sun.management.ThreadMXBean, "needs HotSpot's allocation counters");
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) bean;
        assumeTrue(mx.isThreadAllocatedMemorySupported(), "needs HotSpot's allocation counters");
        mx.setThreadAllocatedMemoryEnabled(true);

        Map<String, Thread> threads = new ConcurrentHashMap<>();
        InMemoryTunDevice tunA = new InMemoryTunDevice("allocA", MTU);
        InMemoryTunDevice tunB = new InMemoryTunDevice("allocB", MTU);
        tunB.discardWrites(true);
        UdpSocket chA = UdpSocket.open(new InetSocketAddress("127.0.0.2", 0), UdpSocket.Options.defaults());
        int port = chA.localAddress().getPort();
        UdpSocket chB = UdpSocket.open(new InetSocketAddress("127.0.0.3", port), UdpSocket.Options.builder()
                .receiveBufferSize(4 << 20).build());
        Lease peerA = new Lease(Ipv4Prefix.parse("10.5.1.0/24"), LeaseAttributes.udp(Ipv4Prefix.fromInt(
                addr(127, 0, 0, 2))), Instant.now().plusSeconds(60));
        Lease peerB = new Lease(Ipv4Prefix.parse("10.5.2.0/24"), LeaseAttributes.udp(Ipv4Prefix.fromInt(
                addr(127, 0, 0, 3))), Instant.now().plusSeconds(60));
        Forwarder a = Forwarder.builder().tun(tunA).socket(chA).ownsTun(true).ownsSocket(true)
                .ownSubnet(Ipv4Prefix.parse("10.5.1.0/24")).network(Ipv4Prefix.parse("10.5.0.0/16"))
                .peers(PeerTable.builder().put(peerB, port).build())
                .threadFactory(r -> register(threads, "a", r)).build();
        Forwarder b = Forwarder.builder().tun(tunB).socket(chB).ownsTun(true).ownsSocket(true)
                .ownSubnet(Ipv4Prefix.parse("10.5.2.0/24")).network(Ipv4Prefix.parse("10.5.0.0/16"))
                .peers(PeerTable.builder().put(peerA, port).build())
                .threadFactory(r -> register(threads, "b", r)).build();
        try {
            a.start();
            b.start();
            byte[] packet = Packets.ipv4(addr(10, 5, 1, 2), addr(10, 5, 2, 9), 17, 64, 1400);
            // Warm up: let the JIT compile the loops and the JDK's socket paths settle (address caches etc.).
            run(tunA, packet, 20_000, a, b);
            // Both threads of a forwarder may work on either direction (the ingress thread sends the replies it
            // finds queued in the TUN), so count the egress side as both threads of a, the ingress side as both of b.
            Thread[] sending = {threads.get("a0"), threads.get("a1")};
            Thread[] receiving = {threads.get("b0"), threads.get("b1")};
            long egressBefore = allocated(mx, sending);
            long ingressBefore = allocated(mx, receiving);
            long sentBefore = a.stats().egressPackets();
            long receivedBefore = b.stats().ingressPackets();
            long start = System.nanoTime();
            run(tunA, packet, 50_000, a, b);
            long nanos = System.nanoTime() - start;
            awaitQuiet(b);
            long sent = a.stats().egressPackets() - sentBefore;
            long received = b.stats().ingressPackets() - receivedBefore;
            long egressBytes = allocated(mx, sending) - egressBefore;
            long ingressBytes = allocated(mx, receiving) - ingressBefore;
            System.out.printf("allocation: egress %d B over %d packets, ingress %d B over %d packets; "
                    + "egress %.0f kpps of 1400 B over loopback%n", egressBytes, sent, ingressBytes, received,
                    sent * 1e6 / nanos);
            assertTrue(sent >= 50_000 && received > 10_000, "sent " + sent + ", received " + received);
            // The per-peer counters ran on the measured path too.
            assertEquals(a.stats().egressPackets(), a.peers().get(peerB.subnet()).stats().egressPackets());
            assertEquals(b.stats().ingressPackets(), b.peers().get(peerA.subnet()).stats().ingressPackets());
            // Zero per packet; a little slack for one-off events (a lazily created JDK object, a safepoint stub).
            assertTrue(egressBytes < 16 * 1024, "egress allocated " + egressBytes + " B for " + sent + " packets");
            assertTrue(ingressBytes < 16 * 1024, "ingress allocated " + ingressBytes + " B for " + received
                    + " packets");
        } finally {
            a.close();
            b.close();
        }
    }

    private static long allocated(com.sun.management.ThreadMXBean mx, Thread[] threads) {
        long sum = 0;
        for (Thread t : threads) {
            sum += mx.getThreadAllocatedBytes(t.getId());
        }
        return sum;
    }

    private static Thread register(Map<String, Thread> threads, String node, Runnable r) {
        Thread t = new Thread(r, "alloc-" + node + threads.size());
        t.setDaemon(true);
        // The forwarder creates egress first, then ingress.
        threads.put(node + (threads.containsKey(node + "0") ? "1" : "0"), t);
        return t;
    }

    /**
     * Sends {@code count} packets from a to b in chunks, letting b's ingress catch up after each: a batching egress
     * outruns a receiver without GRO on loopback, and the test needs the ingress path to see most packets.
     */
    private static void run(InMemoryTunDevice tun, byte[] packet, int count, Forwarder a, Forwarder b)
            throws InterruptedException {
        int chunk = 1000;
        for (int done = 0; done < count; done += chunk) {
            long target = a.stats().egressPackets() + chunk;
            tun.injectRepeated(packet, chunk);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (a.stats().egressPackets() < target) {
                assertTrue(System.nanoTime() < deadline, "timed out: " + a.stats());
                Thread.sleep(1);
            }
            long sent = a.stats().egressPackets();
            long settle = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(200);
            while (b.stats().ingressPackets() < sent && System.nanoTime() < settle) {
                Thread.sleep(1);
            }
        }
    }

    private static void awaitQuiet(Forwarder f) throws InterruptedException {
        long last = -1;
        long now = f.stats().ingressPackets();
        while (now != last) {
            Thread.sleep(50);
            last = now;
            now = f.stats().ingressPackets();
        }
    }
}
