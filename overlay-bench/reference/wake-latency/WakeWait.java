import io.overlay4j.tun.UdpSocket;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.DatagramChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.util.Arrays;

/**
 * The JVM side of overlay4j's wake-latency probe (see run.sh): like {@code wakeprobe wait}, but blocking either in
 * overlay4j's {@code UdpSocket.awaitReadable} (JNA {@code poll(2)}, mode {@code jna}) or in the JDK's own blocking
 * {@code DatagramChannel.receive} (mode {@code nio}), or in a {@code Selector} that also times out every 4 ms (mode
 * {@code tick}: a thread that wakes up by itself now and then, as overlay4j's quiet forwarder does).
 * {@code System.nanoTime()} reads CLOCK_MONOTONIC on Linux, the clock {@code wakeprobe send} stamps the datagrams
 * with.
 */
public final class WakeWait {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[1]);
        boolean jna = args[0].equals("jna");
        boolean tick = args[0].equals("tick");
        ByteBuffer b = ByteBuffer.allocateDirect(70_000).order(ByteOrder.nativeOrder());
        long[] d = new long[100_000];
        int n = 0;
        UdpSocket socket = jna ? UdpSocket.open(new InetSocketAddress("127.0.0.1", port), UdpSocket.Options.defaults())
                : null;
        DatagramChannel channel = jna ? null : DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", port));
        Selector selector = null;
        if (tick) {
            channel.configureBlocking(false);
            selector = Selector.open();
            channel.register(selector, SelectionKey.OP_READ);
        }
        UdpSocket.Received received = new UdpSocket.Received();
        while (true) {
            b.clear();
            long now;
            if (jna) {
                socket.awaitReadable();
                now = System.nanoTime();
                if (socket.tryReceive(b, received) < 0) {
                    continue;
                }
            } else if (tick) {
                selector.select(4);
                now = System.nanoTime();
                selector.selectedKeys().clear();
                if (channel.receive(b) == null) {
                    continue;
                }
            } else {
                channel.receive(b);
                now = System.nanoTime();
            }
            long sent = b.getLong(0);
            if (sent < 0) {
                break;
            }
            if (sent == 1) {
                n = 0;
            } else if (n < d.length) {
                d[n++] = now - sent;
            }
        }
        long[] c = Arrays.copyOf(d, n);
        Arrays.sort(c);
        String what = jna ? "JNA poll" : tick ? "NIO tick" : "NIO recv";
        System.out.printf("JVM %-9s n=%d p10=%.1f p50=%.1f p90=%.1f us%n", what, n,
                c[n / 10] / 1e3, c[n / 2] / 1e3, c[n * 9 / 10] / 1e3);
        if (jna) {
            socket.close();
        } else {
            channel.close();
        }
    }
}
