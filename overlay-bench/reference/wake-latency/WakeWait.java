import io.overlay4j.tun.UdpSocket;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.DatagramChannel;
import java.util.Arrays;

/**
 * The JVM side of overlay4j's wake-latency probe (see run.sh): like {@code wakeprobe wait}, but blocking either in
 * overlay4j's {@code UdpSocket.awaitReadable} (JNA {@code poll(2)}, mode {@code jna}) or in the JDK's own blocking
 * {@code DatagramChannel.receive} (mode {@code nio}). {@code System.nanoTime()} reads CLOCK_MONOTONIC on Linux, the
 * clock {@code wakeprobe send} stamps the datagrams with.
 */
public final class WakeWait {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[1]);
        boolean jna = args[0].equals("jna");
        ByteBuffer b = ByteBuffer.allocateDirect(70_000).order(ByteOrder.nativeOrder());
        long[] d = new long[100_000];
        int n = 0;
        UdpSocket socket = jna ? UdpSocket.open(new InetSocketAddress("127.0.0.1", port), UdpSocket.Options.defaults())
                : null;
        DatagramChannel channel = jna ? null : DatagramChannel.open().bind(new InetSocketAddress("127.0.0.1", port));
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
        System.out.printf("JVM %-9s n=%d p10=%.1f p50=%.1f p90=%.1f us%n", jna ? "JNA poll" : "NIO recv", n,
                c[n / 10] / 1e3, c[n / 2] / 1e3, c[n * 9 / 10] / 1e3);
        if (jna) {
            socket.close();
        } else {
            channel.close();
        }
    }
}
