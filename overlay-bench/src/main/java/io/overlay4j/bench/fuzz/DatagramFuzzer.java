package io.overlay4j.bench.fuzz;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.tun.UdpSocket;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;

/**
 * Sends {@link HostileDatagrams} at one overlay4j node's UDP port: from a leased sender's address (its lease's port
 * for flannel udp), from a stranger's address and from the leased address with a wrong port, mixing single datagrams
 * ({@code sendmmsg} batches of up to 64, any sizes) with runs of equal-size datagrams of mixed cases in one UDP GSO
 * send (which a receiver with UDP GRO takes in as one batch). Counts what it sent per {@link FuzzCase}
 * ({@link FuzzResult}). A fixed seed reproduces the datagrams; pacing and rate change only their timing.
 *
 * <p>As a library (tests): build it on a thread in the sender's network namespace (the sockets are opened there),
 * give it the receiver's drop counter to {@linkplain Builder#pace pace} on, so the receiver's socket buffer never
 * overflows and every datagram is accounted for, and call {@link #run}. From the command line: {@link #main}
 * ({@code --help}).
 */
public final class DatagramFuzzer implements AutoCloseable {
    private static final int MAX_UNIT = UdpSocket.MAX_BATCH;
    private static final long STALL_NANOS = TimeUnit.SECONDS.toNanos(60);

    private final HostileDatagrams generator;
    private final HostileDatagrams.Target target;
    private final long seed;
    private final SplittableRandom random;
    private final UdpSocket leased;
    private final UdpSocket stranger;
    private final UdpSocket wrongPort;
    private final boolean gso;
    private final long rate;
    private final LongSupplier counted;
    private final int window;
    private final ByteBuffer run = ByteBuffer.allocateDirect(MAX_UNIT * 1500 + 1500);
    private final ByteBuffer[] batch = new ByteBuffer[MAX_UNIT];
    private final FuzzCase[] batchCases = new FuzzCase[MAX_UNIT];
    private final int[] addresses = new int[MAX_UNIT];
    private final int[] ports = new int[MAX_UNIT];
    private final long[] sent = new long[FuzzCase.values().length];
    private final boolean[] expectDrop = new boolean[FuzzCase.values().length];
    private volatile boolean stopped;
    private long bytes;
    private long sendErrors;
    private long dropsSent;
    private long sequence;

    private DatagramFuzzer(Builder b, UdpSocket leased, UdpSocket stranger, UdpSocket wrongPort) {
        this.target = b.target;
        this.seed = b.seed;
        this.generator = new HostileDatagrams(b.target, b.seed);
        this.random = new SplittableRandom(b.seed ^ 0x5deece66dL);
        this.leased = leased;
        this.stranger = stranger;
        this.wrongPort = wrongPort;
        this.gso = b.gso;
        this.rate = b.rate;
        this.counted = b.counted;
        this.window = b.window;
        for (int i = 0; i < MAX_UNIT; i++) {
            batch[i] = ByteBuffer.allocateDirect(HostileDatagrams.MAX_DATAGRAM);
            addresses[i] = target.receiverAddress();
            ports[i] = target.port();
        }
        for (FuzzCase c : FuzzCase.values()) {
            expectDrop[c.ordinal()] = c.appliesTo(target.encapsulation()) && c.expected(target.encapsulation()) != null;
        }
    }

    /** A builder. */
    public static Builder builder() {
        return new Builder();
    }

    /** The generator's target. */
    public HostileDatagrams.Target target() {
        return target;
    }

    /** The seed. */
    public long seed() {
        return seed;
    }

    /** Makes {@link #run} return after its current send. Any thread. */
    public void stop() {
        stopped = true;
    }

    /**
     * Sends until {@code datagrams} are sent, {@code maxTime} has passed or {@link #stop()} is called; may be called
     * again (counts accumulate).
     *
     * @return what was sent so far
     * @throws IOException           if a socket is closed under it
     * @throws IllegalStateException if paced and the receiver counted nothing for 60 s while datagrams were owed
     */
    public FuzzResult run(long datagrams, Duration maxTime) throws IOException {
        long start = System.nanoTime();
        long deadline = maxTime == null ? Long.MAX_VALUE : start + maxTime.toNanos();
        long base = counted == null ? 0 : counted.getAsLong() - dropsSent;
        long sentAtStart = total();
        long lastProgress = start;
        long lastCounted = -1;
        while (!stopped && total() < datagrams && System.nanoTime() < deadline) {
            long left = datagrams - total();
            int unit = (int) Math.min(1 + random.nextInt(MAX_UNIT), left);
            if (counted != null) {
                while (!stopped) {
                    long c = counted.getAsLong() - base;
                    if (dropsSent - c + unit <= window) {
                        break;
                    }
                    long now = System.nanoTime();
                    if (c != lastCounted) {
                        lastCounted = c;
                        lastProgress = now;
                    } else if (now - lastProgress > STALL_NANOS) {
                        throw new IllegalStateException("the receiver counted nothing for 60 s: " + (dropsSent - c)
                                + " drops owed; " + result(start));
                    }
                    LockSupport.parkNanos(50_000);
                }
            }
            if (rate > 0) {
                long due = start + (long) ((total() - sentAtStart) * 1e9 / rate);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    LockSupport.parkNanos(wait);
                }
            }
            sendUnit(unit);
        }
        return result(start);
    }

    private long total() {
        long n = 0;
        for (long s : sent) {
            n += s;
        }
        return n;
    }

    private FuzzResult result(long start) {
        Map<FuzzCase, Long> m = new EnumMap<>(FuzzCase.class);
        for (FuzzCase c : generator.cases()) {
            if (usable(c)) {
                m.put(c, sent[c.ordinal()]);
            }
        }
        return new FuzzResult(target.encapsulation(), seed, m, bytes, sendErrors, (System.nanoTime() - start) / 1e9);
    }

    private boolean usable(FuzzCase c) {
        return socketFor(c.sender()) != null;
    }

    private UdpSocket socketFor(FuzzCase.Sender s) {
        switch (s) {
            case LEASED:
                return leased;
            case STRANGER:
                return stranger;
            default:
                return wrongPort;
        }
    }

    /** One send call's worth: a GSO run of the leased sender, or a batch of one sender's cases. */
    private void sendUnit(int count) throws IOException {
        FuzzCase first = generator.nextCase();
        while (!usable(first)) {
            first = generator.nextCase();
        }
        FuzzCase.Sender sender = first.sender();
        UdpSocket socket = socketFor(sender);
        if (sender == FuzzCase.Sender.LEASED && gso && count > 1 && random.nextBoolean()) {
            int size = generator.nextRunSize();
            count = Math.min(count, UdpSocket.MAX_PAYLOAD / size);
            run.clear();
            for (int i = 0; i < count; i++) {
                FuzzCase c = generator.nextCaseOfSize(size);
                batchCases[i] = c;
                generator.write(c, run, i * size, size, sequence++);
            }
            run.limit(count * size);
            try {
                socket.sendSegmented(run, size, target.receiverAddress(), target.port());
            } catch (IOException e) {
                if (!socket.isOpen()) {
                    throw e;
                }
                sendErrors += count;
                return;
            }
            for (int i = 0; i < count; i++) {
                counted(batchCases[i], size);
            }
            return;
        }
        for (int i = 0; i < count; i++) {
            FuzzCase c = i == 0 ? first : generator.nextCase(sender);
            int size = generator.nextSize(c);
            ByteBuffer b = batch[i];
            b.clear();
            generator.write(c, b, 0, size, sequence++);
            b.limit(size);
            batchCases[i] = c;
        }
        try {
            socket.sendBatch(batch, addresses, ports, 0, count);
        } catch (IOException e) {
            if (!socket.isOpen()) {
                throw e;
            }
            for (int i = 0; i < count; i++) {
                if (batch[i].hasRemaining()) {
                    sendErrors++;
                } else {
                    counted(batchCases[i], batch[i].limit());
                }
            }
            return;
        }
        for (int i = 0; i < count; i++) {
            counted(batchCases[i], batch[i].limit());
        }
    }

    private void counted(FuzzCase c, int size) {
        sent[c.ordinal()]++;
        bytes += size;
        if (expectDrop[c.ordinal()]) {
            dropsSent++;
        }
    }

    /** Closes the sockets. Idempotent. */
    @Override
    public void close() {
        for (UdpSocket s : new UdpSocket[] {leased, stranger, wrongPort}) {
            if (s != null) {
                s.close();
            }
        }
    }

    /**
     * Runs the fuzzer from the command line; {@code --help} lists the options. Prints the per-case table when done,
     * or on SIGTERM/SIGINT; exit status 0, or 1 if a send failed, 2 for bad options.
     */
    public static void main(String[] args) throws Exception {
        FuzzerCommand.main(args);
    }

    /**
     * Builds a {@link DatagramFuzzer}: {@link #target} and {@link #leasedAddress} are required. {@link #build()}
     * opens the sockets on the calling thread, so in its network namespace.
     */
    public static final class Builder {
        private HostileDatagrams.Target target;
        private long seed = ThreadLocalRandom.current().nextLong();
        private Inet4Address leasedAddress;
        private int leasedPort = -1;
        private Inet4Address strangerAddress;
        private boolean gso = true;
        private long rate;
        private LongSupplier counted;
        private int window = 1024;
        private int sendBufferSize = 4 << 20;

        private Builder() {
        }

        /** The node and the leases the datagrams are made for. Required. */
        public Builder target(HostileDatagrams.Target target) {
            this.target = requireNonNull(target, "target");
            return this;
        }

        /** The seed; the same seed sends the same datagrams. Default random (see {@link DatagramFuzzer#seed()}). */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /**
         * The local address to send the leased sender's datagrams from: the public address of the target's sender
         * lease, which must be configured on this host. Default: the target's sender address.
         */
        public Builder leasedAddress(Inet4Address address) {
            this.leasedAddress = requireNonNull(address, "address");
            return this;
        }

        /**
         * The source port of the leased sender's datagrams; default the target's port for flannel udp (which fixes
         * it), any port for VXLAN.
         */
        public Builder leasedPort(int port) {
            this.leasedPort = port;
            return this;
        }

        /**
         * A local address that holds no lease, to send {@link FuzzCase#UNKNOWN_SENDER} from; default none (that case
         * is not sent).
         */
        public Builder strangerAddress(Inet4Address address) {
            this.strangerAddress = requireNonNull(address, "address");
            return this;
        }

        /** Whether to send runs of equal-size datagrams with UDP GSO; default true. */
        public Builder gso(boolean gso) {
            this.gso = gso;
            return this;
        }

        /** At most this many datagrams per second; default 0, unlimited. */
        public Builder rate(long datagramsPerSecond) {
            if (datagramsPerSecond < 0) {
                throw new IllegalArgumentException("rate must not be negative: " + datagramsPerSecond);
            }
            this.rate = datagramsPerSecond;
            return this;
        }

        /**
         * Paces sending on the receiver's own count of drops (e.g. {@code () -> node.stats().totalDrops()}): no more
         * than {@code window} datagrams the receiver must drop are ever owed, so its socket buffer cannot overflow
         * and every datagram is counted. Default: not paced.
         */
        public Builder pace(LongSupplier receiverDrops, int window) {
            if (window < MAX_UNIT) {
                throw new IllegalArgumentException("window must be at least " + MAX_UNIT + ": " + window);
            }
            this.counted = requireNonNull(receiverDrops, "receiverDrops");
            this.window = window;
            return this;
        }

        /** SO_SNDBUF of the sockets; default 4 MiB. */
        public Builder sendBufferSize(int bytes) {
            this.sendBufferSize = bytes;
            return this;
        }

        /**
         * Opens the sockets (on this thread, in its namespace) and builds the fuzzer.
         *
         * @throws IOException if a socket cannot be bound (the address is not local, or the port is taken)
         */
        public DatagramFuzzer build() throws IOException {
            if (target == null) {
                throw new IllegalArgumentException("a fuzzer needs a target");
            }
            Inet4Address from = leasedAddress != null ? leasedAddress : Ipv4Prefix.fromInt(target.senderAddress());
            boolean udp = target.encapsulation() == Encapsulation.FLANNEL_UDP;
            int port = leasedPort >= 0 ? leasedPort : udp ? target.port() : 0;
            UdpSocket.Options options = UdpSocket.Options.builder().sendBufferSize(sendBufferSize)
                    .receiveBufferSize(1 << 16).build();
            UdpSocket leased = null;
            UdpSocket stranger = null;
            UdpSocket wrong = null;
            try {
                leased = UdpSocket.open(new InetSocketAddress(from, port), options);
                if (strangerAddress != null) {
                    stranger = UdpSocket.open(new InetSocketAddress(strangerAddress, 0), options);
                }
                if (udp) {
                    wrong = UdpSocket.open(new InetSocketAddress(from, 0), options);
                }
                return new DatagramFuzzer(this, leased, stranger, wrong);
            } catch (IOException | RuntimeException e) {
                for (UdpSocket s : new UdpSocket[] {leased, stranger, wrong}) {
                    if (s != null) {
                        s.close();
                    }
                }
                throw e;
            }
        }
    }
}
