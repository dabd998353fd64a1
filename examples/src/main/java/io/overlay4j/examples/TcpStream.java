package io.overlay4j.examples;

import io.overlay4j.tun.NetworkNamespace;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Pushes a TCP stream from one namespace to another and checks every byte: the sender repeats a pseudo-random block,
 * the receiver compares each byte with what must arrive at that offset.
 */
public final class TcpStream {
    private static final int BLOCK = 1 << 20;

    private TcpStream() {
    }

    /**
     * What a transfer moved.
     *
     * @param bytesSent     bytes the client wrote
     * @param bytesReceived bytes the server read
     * @param seconds       from connect to the last byte received
     * @param intact        whether every received byte was the one sent at that offset and none was missing
     */
    public record Result(long bytesSent, long bytesReceived, double seconds, boolean intact) {
        /** Goodput in gigabits per second. */
        public double gigabitsPerSecond() {
            return bytesReceived * 8 / seconds / 1e9;
        }
    }

    /**
     * Streams from {@code client} to {@code server} until {@code maxBytes} are sent or {@code maxTime} has passed.
     */
    public static Result run(NetworkNamespace client, NetworkNamespace server, Inet4Address serverIp, int port,
                             long maxBytes, Duration maxTime) throws Exception {
        byte[] pattern = new byte[BLOCK];
        new Random(0x0f1a77e1L).nextBytes(pattern);
        ByteBuffer block = ByteBuffer.allocateDirect(BLOCK).put(pattern).flip();
        InetSocketAddress address = new InetSocketAddress(serverIp, port);
        try (ServerSocketChannel listener = server.call(() -> ServerSocketChannel.open().bind(address))) {
            CompletableFuture<long[]> receiver = new CompletableFuture<>();
            Thread rx = new Thread(() -> receive(listener, block, receiver), "tcp-stream-receiver");
            rx.setDaemon(true);
            rx.start();
            long start = System.nanoTime();
            long sent;
            try (SocketChannel ch = client.call(() -> SocketChannel.open(address))) {
                sent = send(ch, block, maxBytes, start + maxTime.toNanos());
                ch.shutdownOutput();
                // Wait for the receiver's EOF before closing, so nothing in flight is reset.
                long[] got = receiver.get(60, TimeUnit.SECONDS);
                double seconds = (got[2] - start) / 1e9;
                return new Result(sent, got[0], seconds, got[1] == 0 && got[0] == sent);
            } catch (ExecutionException e) {
                throw new IOException("receiver failed", e.getCause());
            } catch (TimeoutException e) {
                throw new IOException("receiver did not see the end of the stream within 60 s", e);
            }
        }
    }

    private static long send(SocketChannel ch, ByteBuffer block, long maxBytes, long deadline) throws IOException {
        long sent = 0;
        ByteBuffer view = block.duplicate();
        while (sent < maxBytes && System.nanoTime() < deadline) {
            int off = (int) (sent % BLOCK);
            int len = (int) Math.min(BLOCK - off, maxBytes - sent);
            view.limit(off + len).position(off);
            sent += ch.write(view);
        }
        return sent;
    }

    private static void receive(ServerSocketChannel listener, ByteBuffer block, CompletableFuture<long[]> result) {
        try (SocketChannel ch = listener.accept()) {
            ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
            long received = 0;
            long mismatches = 0;
            while (true) {
                int off = (int) (received % BLOCK);
                buf.clear().limit(BLOCK - off);
                int n = ch.read(buf);
                if (n < 0) {
                    break;
                }
                buf.flip();
                ByteBuffer expected = block.duplicate().position(off).limit(off + n);
                if (buf.mismatch(expected) != -1) {
                    mismatches++;
                }
                received += n;
            }
            result.complete(new long[] {received, mismatches, System.nanoTime()});
        } catch (Throwable t) {
            result.completeExceptionally(t);
        }
    }
}
