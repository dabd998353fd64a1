package io.overlay4j.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.TunDevice;
import io.overlay4j.TunOptions;
import io.overlay4j.udp.testing.Packets;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The behaviour every {@link TunDevice} must show, run against each implementation (overlay-tun's Linux device in a
 * network namespace, and the in-memory device). Plain devices only: one IP packet per read and write.
 *
 * <p>The host side of the device is reached through two hooks: {@link #sendThroughDevice} has the host send a UDP
 * datagram from {@link #LOCAL} to {@link #REMOTE} (an address routed into the device, as flannel routes its whole
 * network into {@code flannel0}), which a read must then return as an IPv4 packet; {@link #receiveFromDevice}
 * receives the UDP payloads that packets written into the device deliver to the host at {@link #LOCAL}.
 *
 * <p>Devices returned by {@link #open} are closed after each test.
 */
@Timeout(60)
public abstract class AbstractTunDeviceContractTest {
    /** The host's own address on the device (flannel gives {@code flannel0} its subnet's network address, /32). */
    protected static final int LOCAL = Packets.addr(100, 96, 1, 0);
    /** An address the host routes into the device ({@code 100.96.0.0/16 dev flannel0}). */
    protected static final int REMOTE = Packets.addr(100, 96, 2, 3);
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final int UDP = 17;

    private final List<TunDevice> devices = new ArrayList<>();
    private final ExecutorService threads = Executors.newCachedThreadPool();

    /** Receives UDP payloads on one port of {@link #LOCAL}. */
    public interface Receiver extends AutoCloseable {
        /** The next payload, waiting up to {@code timeout}; {@code null} if none came. */
        byte[] receive(Duration timeout) throws Exception;

        @Override
        void close() throws IOException;
    }

    /** Opens a device with these options, in a fresh environment (for the kernel: a new network namespace). */
    protected abstract TunDevice open(TunOptions options) throws Exception;

    /**
     * Makes the device reachable from the host, as flannel does: for a kernel device, {@link #LOCAL}/32 on it, the
     * device up, {@code 100.96.0.0/16} routed into it. Called once per device before the hooks below.
     */
    protected abstract void connect(TunDevice device) throws Exception;

    /**
     * Has the host send one UDP datagram with {@code payload} from {@link #LOCAL} (any source port) to
     * {@link #REMOTE}:{@code port}; the host routes it into {@code device}.
     */
    protected abstract void sendThroughDevice(TunDevice device, int port, byte[] payload) throws Exception;

    /** Starts receiving the UDP datagrams that packets written into {@code device} deliver to {@link #LOCAL}:port. */
    protected abstract Receiver receiveFromDevice(TunDevice device, int port) throws Exception;

    private TunDevice device(TunOptions options) throws Exception {
        TunDevice d = open(options);
        devices.add(d);
        return d;
    }

    private TunDevice connected() throws Exception {
        TunDevice d = device(new TunOptions("o4jc%d", 1400));
        connect(d);
        return d;
    }

    @AfterEach
    void closeDevices() throws InterruptedException {
        for (TunDevice d : devices) {
            d.close();
        }
        devices.clear();
        threads.shutdownNow();
        assertTrue(threads.awaitTermination(10, TimeUnit.SECONDS), "a reader is stuck after its device closed");
    }

    /** Reads packets until an IPv4 UDP packet to {@code port} arrives (others are skipped), within 10 s. */
    private byte[] readUdpTo(TunDevice device, int port, ByteBuffer buffer) throws Exception {
        Future<byte[]> f = threads.submit(() -> {
            while (true) {
                int start = buffer.position();
                buffer.limit(buffer.capacity());
                int n = device.read(buffer);
                assertEquals(start + n, buffer.position(), "read advances the position by the packet length");
                byte[] p = new byte[n];
                buffer.get(start, p);
                buffer.position(start);
                if (n >= 28 && (p[0] & 0xf0) == 0x40 && p[9] == UDP && port(p, 22) == port) {
                    return p;
                }
            }
        });
        try {
            return f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            device.close();
            throw new AssertionError("no UDP packet to port " + port + " read from " + device.name() + " in " + WAIT);
        }
    }

    private static int port(byte[] p, int off) {
        return (p[off] & 0xff) << 8 | p[off + 1] & 0xff;
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    @Test
    void opensWithTheRequestedNameAndMtu() throws Exception {
        TunDevice d = device(new TunOptions("o4jc-tun", 1400));
        assertEquals("o4jc-tun", d.name());
        assertEquals(1400, d.mtu());
        assertTrue(d.index() > 0, "index " + d.index());
        assertTrue(d.isOpen());
        assertFalse(d.vnetHeader(), "a plain device has no virtio header");
    }

    @Test
    void aNameTemplateIsNumbered() throws Exception {
        TunDevice first = device(new TunOptions("o4jc%d", 1472));
        TunDevice second = device(new TunOptions("o4jc%d", 1472));
        assertTrue(first.name().matches("o4jc\\d+"), first.name());
        assertTrue(second.name().matches("o4jc\\d+"), second.name());
        assertNotEquals(first.name(), second.name());
        assertNotEquals(first.index(), second.index());
    }

    @Test
    void readReturnsOneRoutedPacketAtTheBufferPosition() throws Exception {
        TunDevice d = connected();
        for (ByteBuffer buffer : List.of(ByteBuffer.allocateDirect(2048), ByteBuffer.allocate(2048))) {
            byte[] payload = bytes("hello overlay4j, " + (buffer.isDirect() ? "direct" : "heap"));
            sendThroughDevice(d, 9999, payload);
            buffer.position(7);
            byte[] p = readUdpTo(d, 9999, buffer);
            assertEquals(28 + payload.length, p.length, "one whole packet: IPv4, UDP, payload");
            assertEquals(0x45, p[0] & 0xff);
            assertEquals(p.length, port(p, 2), "total length");
            assertTrue(Packets.headerChecksumOk(p, 0), "header checksum");
            assertEquals(LOCAL, getInt(p, 12), "source");
            assertEquals(REMOTE, getInt(p, 16), "destination");
            byte[] got = new byte[payload.length];
            System.arraycopy(p, 28, got, 0, got.length);
            assertArrayEquals(payload, got);
        }
    }

    private static int getInt(byte[] p, int off) {
        return (p[off] & 0xff) << 24 | (p[off + 1] & 0xff) << 16 | (p[off + 2] & 0xff) << 8 | p[off + 3] & 0xff;
    }

    @Test
    void aBufferShorterThanThePacketGetsItsFirstBytes() throws Exception {
        TunDevice d = connected();
        sendThroughDevice(d, 9998, new byte[100]);
        ByteBuffer small = ByteBuffer.allocateDirect(24);
        Future<Integer> n = threads.submit(() -> {
            while (true) {
                small.clear();
                int read = d.read(small);
                if ((small.get(0) & 0xf0) == 0x40 && small.get(9) == UDP && small.getShort(22) == 9998) {
                    return read;
                }
            }
        });
        assertEquals(24, n.get(WAIT.toMillis(), TimeUnit.MILLISECONDS));
        assertEquals(24, small.position());
        assertEquals(128, small.getShort(2) & 0xffff, "the header still says 128 bytes");
    }

    @Test
    void writeInjectsOnePacketAndConsumesTheBuffer() throws Exception {
        TunDevice d = connected();
        try (Receiver rx = receiveFromDevice(d, 7777)) {
            for (boolean direct : new boolean[] {true, false}) {
                byte[] payload = bytes(direct ? "from a direct buffer" : "from a heap buffer");
                byte[] packet = Packets.udp(REMOTE, 5555, LOCAL, 7777, payload);
                ByteBuffer src = direct ? ByteBuffer.allocateDirect(3 + packet.length) : ByteBuffer.allocate(
                        3 + packet.length);
                src.position(3);
                src.put(packet).flip().position(3);
                assertEquals(packet.length, d.write(src));
                assertEquals(src.limit(), src.position(), "write advances the position to the limit");
                assertArrayEquals(payload, rx.receive(WAIT));
            }
        }
    }

    @Test
    void writesFromSeveralThreadsEachInjectOneWholePacket() throws Exception {
        TunDevice d = connected();
        int threadsCount = 4;
        int perThread = 25;
        try (Receiver rx = receiveFromDevice(d, 7778)) {
            List<Future<?>> writers = new ArrayList<>();
            for (int t = 0; t < threadsCount; t++) {
                int id = t;
                writers.add(threads.submit(() -> {
                    ByteBuffer src = ByteBuffer.allocateDirect(2048);
                    for (int i = 0; i < perThread; i++) {
                        src.clear();
                        src.put(Packets.udp(REMOTE, 5555, LOCAL, 7778, bytes("packet " + id + "/" + i))).flip();
                        d.write(src);
                        if (i % 5 == 4) {
                            Thread.sleep(1); // leave the host's receive queue time to drain
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> w : writers) {
                w.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            }
            Set<String> got = new HashSet<>();
            for (int i = 0; i < threadsCount * perThread; i++) {
                byte[] payload = rx.receive(WAIT);
                assertTrue(payload != null, "received " + got.size() + " of " + threadsCount * perThread);
                got.add(new String(payload, StandardCharsets.US_ASCII));
            }
            assertEquals(threadsCount * perThread, got.size(), "each packet once and whole");
        }
    }

    @Test
    void closeWakesABlockedReader() throws Exception {
        TunDevice d = connected();
        Future<Integer> reader = threads.submit(() -> {
            ByteBuffer buffer = ByteBuffer.allocateDirect(2048);
            while (true) {
                buffer.clear();
                d.read(buffer); // nothing is sent; anything the host emits on its own is skipped
            }
        });
        Thread.sleep(200);
        assertFalse(reader.isDone(), "with nothing sent, the read blocks");
        d.close();
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> reader.get(WAIT.toMillis(), TimeUnit.MILLISECONDS));
        assertInstanceOf(ClosedChannelException.class, e.getCause());
    }

    @Test
    void closeIsIdempotentAndLaterCallsAreClosedChannel() throws Exception {
        TunDevice d = connected();
        d.close();
        d.close();
        assertFalse(d.isOpen());
        assertThrows(ClosedChannelException.class, () -> d.read(ByteBuffer.allocateDirect(2048)));
        assertThrows(ClosedChannelException.class,
                () -> d.write(ByteBuffer.wrap(Packets.udp(REMOTE, 5555, LOCAL, 7779, new byte[8]))));
    }
}
