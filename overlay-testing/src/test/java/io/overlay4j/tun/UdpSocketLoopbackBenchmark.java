package io.overlay4j.tun;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Loopback throughput of {@link UdpSocket}: the JDK's {@link DatagramChannel} as the baseline, plain sends, GSO sends (44 segments per call), {@code sendmmsg} batches,
 * and receive calls per datagram with and without GRO. Measures and logs; asserts nothing about speed. Off by default
 * (it keeps both cores busy for ~20 s); run it with
 * {@code mvn -B -q -pl overlay-tun -am verify -Dtest=UdpSocketLoopbackBenchmark -Dsurefire.failIfNoSpecifiedTests=false
 * -Doverlay4j.bench=true}.
 */
@EnabledIfSystemProperty(named = "overlay4j.bench", matches = "true")
class UdpSocketLoopbackBenchmark {
    private static final Logger LOG = LoggerFactory.getLogger(UdpSocketLoopbackBenchmark.class);
    private static final int LOOPBACK = 0x7f000001;
    private static final int PAYLOAD = 1400;
    private static final int SEGMENTS = 44;
    private static final long MILLIS = Long.getLong("overlay4j.bench.millis", 3000);

    private enum Mode { JDK, PLAIN, GSO, BATCH }

    @Test
    void loopback() throws Exception {
        ExecutorService threads = Executors.newCachedThreadPool();
        try {
            for (int run = 0; run < 2; run++) { // the first run warms up the JIT
                measure(threads, Mode.JDK, false, run);
                measure(threads, Mode.PLAIN, false, run);
                measure(threads, Mode.BATCH, false, run);
                measure(threads, Mode.GSO, false, run);
                measure(threads, Mode.PLAIN, true, run);
                measure(threads, Mode.GSO, true, run);
            }
        } finally {
            threads.shutdownNow();
        }
    }

    private void measure(ExecutorService threads, Mode mode, boolean gro, int run) throws Exception {
        UdpSocket.Options big = UdpSocket.Options.builder().sendBufferSize(8 << 20).receiveBufferSize(32 << 20)
                .gro(gro).build();
        try (UdpSocket tx = UdpSocket.open(new InetSocketAddress("127.0.0.1", 0), big);
             UdpSocket rx = UdpSocket.open(new InetSocketAddress("127.0.0.1", 0), big);
             DatagramChannel jdk = DatagramChannel.open()) {
            int port = rx.localAddress().getPort();
            InetSocketAddress target = rx.localAddress();
            Future<long[]> receiver = threads.submit(() -> receive(rx));
            ByteBuffer burst = ByteBuffer.allocateDirect(PAYLOAD * SEGMENTS);
            ByteBuffer[] singles = new ByteBuffer[SEGMENTS];
            int[] addresses = new int[SEGMENTS];
            int[] ports = new int[SEGMENTS];
            for (int i = 0; i < SEGMENTS; i++) {
                singles[i] = burst.duplicate().position(i * PAYLOAD).limit((i + 1) * PAYLOAD).slice();
                addresses[i] = LOOPBACK;
                ports[i] = port;
            }
            long sent = 0;
            long calls = 0;
            long start = System.nanoTime();
            long end = start + TimeUnit.MILLISECONDS.toNanos(MILLIS);
            long now;
            do {
                for (int i = 0; i < 16; i++) {
                    switch (mode) {
                        case JDK:
                            singles[0].rewind();
                            jdk.send(singles[0], target);
                            sent++;
                            break;
                        case PLAIN:
                            singles[0].rewind();
                            tx.send(singles[0], LOOPBACK, port);
                            sent++;
                            break;
                        case GSO:
                            burst.clear();
                            tx.sendSegmented(burst, PAYLOAD, LOOPBACK, port);
                            sent += SEGMENTS;
                            break;
                        default:
                            for (ByteBuffer b : singles) {
                                b.rewind();
                            }
                            tx.sendBatch(singles, addresses, ports, 0, SEGMENTS);
                            sent += SEGMENTS;
                            break;
                    }
                    calls++;
                }
                now = System.nanoTime();
            } while (now < end);
            double seconds = (now - start) / 1e9;
            Thread.sleep(200); // let the receiver drain what is queued
            rx.close();
            long[] r = receiver.get(5, TimeUnit.SECONDS);
            if (run == 0) {
                return;
            }
            LOG.info(String.format("%-5s sends%s: %,9.0f datagrams/s sent (%,8.0f send calls/s, %5.2f Gb/s payload),"
                            + " %,9.0f datagrams/s received (%.1f %% of sent), %.3f receive calls per datagram%s",
                    mode, gro ? ", GRO receiver" : ", plain receiver", sent / seconds, calls / seconds,
                    sent * PAYLOAD * 8 / seconds / 1e9, r[0] / seconds, 100.0 * r[0] / sent,
                    r[0] == 0 ? 0.0 : (double) r[1] / r[0], tx.gsoSupported() ? "" : " (GSO fell back)"));
        }
    }

    /** Receives until the socket is closed; returns {datagrams, receive calls}. */
    private static long[] receive(UdpSocket rx) throws IOException {
        ByteBuffer dst = ByteBuffer.allocateDirect(65536);
        UdpSocket.Received info = new UdpSocket.Received();
        long datagrams = 0;
        long calls = 0;
        try {
            while (true) {
                dst.clear();
                rx.receive(dst, info);
                calls++;
                datagrams += info.segmentCount();
            }
        } catch (ClosedChannelException closed) {
            return new long[] {datagrams, calls};
        }
    }
}
