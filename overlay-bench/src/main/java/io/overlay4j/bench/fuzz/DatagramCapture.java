package io.overlay4j.bench.fuzz;

import io.overlay4j.tun.NetworkNamespace;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.DatagramChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Listens where a fuzzer's datagrams must not arrive: a UDP socket on the capture port in each of some network
 * namespaces (the containers behind the attacked node, and the hosts a forged destination names), counting what
 * arrives per {@link FuzzCase} by the marker {@link HostileDatagrams} puts in every routable inner packet. Anything
 * but {@link FuzzCase#delivered()} cases arriving anywhere means a hostile datagram got through.
 */
public final class DatagramCapture implements AutoCloseable {
    private static final int CASES = FuzzCase.values().length;

    private final List<Listener> listeners = new ArrayList<>();

    private DatagramCapture() {
    }

    /**
     * Opens a capture socket bound to {@code 0.0.0.0:port} in each namespace ({@code null}: the caller's) and starts
     * one reader thread per socket.
     *
     * @throws IOException if a socket cannot be bound (the port is taken)
     */
    public static DatagramCapture open(int port, List<NetworkNamespace> namespaces) throws IOException {
        DatagramCapture capture = new DatagramCapture();
        try {
            for (NetworkNamespace ns : namespaces) {
                DatagramChannel ch;
                try {
                    ch = ns == null ? bind(port) : ns.call(() -> bind(port));
                } catch (IOException e) {
                    throw e;
                } catch (Exception e) {
                    throw new IOException("cannot open a capture socket in " + ns, e);
                }
                Listener l = new Listener(ns == null ? "here" : ns.name(), ch);
                capture.listeners.add(l);
                l.thread.start();
            }
            return capture;
        } catch (IOException | RuntimeException e) {
            capture.close();
            throw e;
        }
    }

    private static DatagramChannel bind(int port) throws IOException {
        DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET);
        try {
            ch.setOption(StandardSocketOptions.SO_RCVBUF, 8 << 20);
            ch.bind(new InetSocketAddress("0.0.0.0", port));
            return ch;
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /** Datagrams of case {@code c} that arrived anywhere. */
    public long received(FuzzCase c) {
        long n = 0;
        for (Listener l : listeners) {
            n += l.counts.get(c.ordinal());
        }
        return n;
    }

    /** Datagrams of case {@code c} that arrived in the namespace named {@code label}. */
    public long received(String label, FuzzCase c) {
        for (Listener l : listeners) {
            if (l.label.equals(label)) {
                return l.counts.get(c.ordinal());
            }
        }
        throw new IllegalArgumentException("no capture in " + label);
    }

    /** Datagrams without a marker (none of the fuzzer's), anywhere. */
    public long unmarked() {
        long n = 0;
        for (Listener l : listeners) {
            n += l.counts.get(CASES);
        }
        return n;
    }

    /** Datagrams that must not have arrived: every case but {@link FuzzCase#delivered()} ones, anywhere. */
    public long hostile() {
        long n = 0;
        for (FuzzCase c : FuzzCase.values()) {
            if (!c.delivered()) {
                n += received(c);
            }
        }
        return n;
    }

    /** One line per namespace: its cases with non-zero counts, the unmarked count, and how many were hostile. */
    public String summary() {
        StringBuilder sb = new StringBuilder();
        for (Listener l : listeners) {
            long hostile = 0;
            sb.append("capture ").append(l.label).append(':');
            for (FuzzCase c : FuzzCase.values()) {
                long n = l.counts.get(c.ordinal());
                if (n != 0) {
                    sb.append(' ').append(c).append('=').append(n);
                    hostile += c.delivered() ? 0 : n;
                }
            }
            sb.append(" unmarked=").append(l.counts.get(CASES)).append(" hostile=").append(hostile).append('\n');
        }
        sb.append("capture total: hostile ").append(hostile());
        return sb.toString();
    }

    /** Closes the sockets and waits for the reader threads. Idempotent. */
    @Override
    public void close() {
        for (Listener l : listeners) {
            try {
                l.channel.close();
            } catch (IOException ignored) {
                // closing a datagram channel does not fail in practice; nothing to do
            }
        }
        for (Listener l : listeners) {
            try {
                l.done.await(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /**
     * Listens until SIGTERM/SIGINT or {@code --duration} and prints {@link #summary()}; exit status 1 if anything
     * hostile arrived.
     *
     * <pre>
     * DatagramCapture [--port 9999] [--netns NAME,NAME...] [--duration SECONDS]
     * </pre>
     */
    public static void main(String[] args) throws Exception {
        int port = 9999;
        List<NetworkNamespace> namespaces = new ArrayList<>();
        long seconds = 0;
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(FuzzerCommand.need(args[i], v));
                case "--netns" -> {
                    for (String n : FuzzerCommand.need(args[i], v).split(",")) {
                        namespaces.add(NetworkNamespace.open(n));
                    }
                }
                case "--duration" -> seconds = Long.parseLong(FuzzerCommand.need(args[i], v));
                case "-h", "--help" -> {
                    System.out.println("usage: DatagramCapture [--port 9999] [--netns NAME,NAME...] "
                            + "[--duration SECONDS]");
                    return;
                }
                default -> FuzzerCommand.usage("unknown option " + args[i]);
            }
            i++;
        }
        if (namespaces.isEmpty()) {
            namespaces.add(null);
        }
        CountDownLatch stop = new CountDownLatch(1);
        sun.misc.SignalHandler onSignal = s -> stop.countDown();
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), onSignal);
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), onSignal);
        try (DatagramCapture capture = open(port, namespaces)) {
            System.out.println("CAPTURING port " + port);
            System.out.flush();
            if (seconds > 0) {
                stop.await(seconds, TimeUnit.SECONDS);
            } else {
                stop.await();
            }
            System.out.println(capture.summary());
            System.out.flush();
            if (capture.hostile() > 0) {
                System.exit(1);
            }
        }
    }

    private static final class Listener {
        final String label;
        final DatagramChannel channel;
        final AtomicLongArray counts = new AtomicLongArray(CASES + 1);
        final CountDownLatch done = new CountDownLatch(1);
        final Thread thread;

        Listener(String label, DatagramChannel channel) {
            this.label = label;
            this.channel = channel;
            this.thread = new Thread(this::receive, "capture-" + label);
            this.thread.setDaemon(true);
        }

        private void receive() {
            ByteBuffer buf = ByteBuffer.allocateDirect(65536);
            try {
                while (true) {
                    buf.clear();
                    channel.receive(buf);
                    buf.flip();
                    FuzzCase c = HostileDatagrams.markedCase(buf);
                    counts.incrementAndGet(c == null ? CASES : c.ordinal());
                }
            } catch (ClosedChannelException e) {
                // closed: done
            } catch (IOException e) {
                System.err.println("capture " + label + " failed: " + e);
            } finally {
                done.countDown();
            }
        }
    }
}
