package io.overlay4j.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.concurrent.FastThreadLocalThread;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Group;
import org.openjdk.jmh.annotations.GroupThreads;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;
import org.openjdk.jmh.infra.Control;

/**
 * Acquire → fill 1,400 bytes (a bulk copy from a {@code byte[]}, standing in for the kernel's copy in a TUN read) →
 * release of one packet buffer, per operation.
 *
 * <p>Single-threaded, one method per strategy:
 * <ul>
 *   <li>{@link #pooledDirect}: {@code PooledByteBufAllocator.DEFAULT.directBuffer(1400)}, {@code release()}, on
 *   JMH's plain worker thread. netty 4.2 treats plain threads as second class: {@code Recycler.get()} hands them a new
 *   {@code PooledByteBuf} object every time (no recycling unless the thread cleans up its {@code FastThreadLocal}s),
 *   and {@code io.netty.allocator.useCacheForAllThreads} now defaults to false, so there is no thread cache either
 *   and every acquire and release goes to a shared arena;</li>
 *   <li>{@link #pooledDirectFastThreadLocal}: the same inside
 *   {@code FastThreadLocalThread.runWithFastThreadLocal}, which makes the thread count as a netty thread (recycler
 *   and thread cache on), in batches of 65,536 per call: each call builds a recycler pool and a thread cache and
 *   throws them away on return (about 100 B per operation with batches of 1,024), so only large batches show the
 *   steady state a netty event-loop thread would see;</li>
 *   <li>{@link #unpooledDirect}: {@code UnpooledByteBufAllocator.DEFAULT.directBuffer(1400)}, {@code release()}
 *   (malloc/free of native memory plus a wrapper object);</li>
 *   <li>{@link #allocateDirect}: {@code ByteBuffer.allocateDirect(1400)}, dropped (the GC and the Cleaner free it, and
 *   {@code Bits.reserveMemory} may call {@code System.gc()} when the direct-memory limit is reached);</li>
 *   <li>{@link #heapArray}: {@code new byte[1400]} and {@link #heapByteBuffer}: {@code ByteBuffer.allocate(1400)},
 *   dropped (TLAB allocation plus zeroing; the GC frees);</li>
 *   <li>{@link #forwarderReuse}: what the forwarder does: one pooled direct buffer per thread acquired once, then
 *   per packet only {@code clear()} and fill; there is no acquire or release per packet.</li>
 * </ul>
 * Every buffer is handed to a {@link Blackhole} so escape analysis cannot remove the allocation.
 *
 * <p>Two threads, JMH group {@code handoff} ({@link #handoffProduce} and {@link #handoffConsume}): a reader thread
 * allocates and fills, and hands the buffer to a writer thread that releases it, through a bounded single-producer
 * single-consumer array ring of 1,024 slots (ordered stores, spin-waiting on a full or empty ring). The ring and the
 * spinning are part of the cost (two cache lines move between cores per buffer), so compare the group's time with
 * the single-threaded figures only as an upper bound of what pooling across threads costs; on a machine with two
 * cores and other load the spinning thread competes for a core. The allocator is a parameter: pooled direct
 * (releases from another thread go to the releasing thread's cache, so the reader keeps reaching into the arena),
 * unpooled direct and unpooled heap.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class BufferPoolBenchmark {
    /** The packet size filled per operation. */
    static final int SIZE = 1400;

    /** The bytes copied into each buffer; per thread. */
    @State(Scope.Thread)
    public static class Source {
        final byte[] bytes = Fixtures.ipv4(Fixtures.subnetOf(1) | 2, Fixtures.subnetOf(2) | 3, SIZE);
    }

    /** The forwarder's per-thread buffer: acquired once per trial, released at the end. */
    @State(Scope.Thread)
    public static class Reused {
        ByteBuf buf;
        ByteBuffer nio;

        /** Acquires the buffer once, as the forwarder thread does when it starts. */
        @Setup(Level.Trial)
        public void setUp() {
            buf = PooledByteBufAllocator.DEFAULT.directBuffer(65536, 65536);
            nio = buf.internalNioBuffer(0, 65536);
        }

        /** Releases it, as the forwarder thread does when it ends. */
        @TearDown(Level.Trial)
        public void tearDown() {
            buf.release();
        }
    }

    /** Pooled direct netty buffer, thread-local cache hit. */
    @Benchmark
    public void pooledDirect(Source src, Blackhole bh) {
        ByteBuf b = PooledByteBufAllocator.DEFAULT.directBuffer(SIZE);
        b.writeBytes(src.bytes);
        bh.consume(b);
        b.release();
    }

    /** Runs {@link #BATCH} pooled acquire-fill-release cycles; {@code runWithFastThreadLocal} calls it. */
    @State(Scope.Thread)
    public static class FastThreadLocalBatch implements Runnable {
        final byte[] bytes = new Source().bytes;
        Blackhole bh;

        @Override
        public void run() {
            for (int i = 0; i < BATCH; i++) {
                ByteBuf b = PooledByteBufAllocator.DEFAULT.directBuffer(SIZE);
                b.writeBytes(bytes);
                bh.consume(b);
                b.release();
            }
        }
    }

    /** Operations per call of {@link #pooledDirectFastThreadLocal}. */
    static final int BATCH = 65536;

    /** Pooled direct netty buffer on a thread netty treats as its own (recycler and thread cache enabled). */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void pooledDirectFastThreadLocal(FastThreadLocalBatch batch, Blackhole bh) {
        batch.bh = bh;
        FastThreadLocalThread.runWithFastThreadLocal(batch);
    }

    /** Unpooled direct netty buffer. */
    @Benchmark
    public void unpooledDirect(Source src, Blackhole bh) {
        ByteBuf b = UnpooledByteBufAllocator.DEFAULT.directBuffer(SIZE);
        b.writeBytes(src.bytes);
        bh.consume(b);
        b.release();
    }

    /** JDK direct buffer, freed by the GC. */
    @Benchmark
    public void allocateDirect(Source src, Blackhole bh) {
        ByteBuffer b = ByteBuffer.allocateDirect(SIZE);
        b.put(src.bytes);
        bh.consume(b);
    }

    /** Heap array, freed by the GC. */
    @Benchmark
    public void heapArray(Source src, Blackhole bh) {
        byte[] b = new byte[SIZE];
        System.arraycopy(src.bytes, 0, b, 0, SIZE);
        bh.consume(b);
    }

    /** Heap ByteBuffer, freed by the GC. */
    @Benchmark
    public void heapByteBuffer(Source src, Blackhole bh) {
        ByteBuffer b = ByteBuffer.allocate(SIZE);
        b.put(src.bytes);
        bh.consume(b);
    }

    /** The forwarder's way: reuse one pooled direct buffer per thread; only reset and fill per packet. */
    @Benchmark
    public void forwarderReuse(Source src, Reused reused, Blackhole bh) {
        ByteBuffer b = reused.nio;
        b.clear();
        b.put(src.bytes);
        bh.consume(b);
    }

    /** A bounded SPSC ring between the two threads of the {@code handoff} group, and the allocator they use. */
    @State(Scope.Group)
    public static class Handoff {
        private static final int SLOTS = 1024;

        /** Which allocator the reader thread uses. */
        @Param({"pooled-direct", "unpooled-direct", "unpooled-heap"})
        public String allocator;

        ByteBufAllocator alloc;
        boolean direct;
        private static final int HEAD = 0;
        private static final int TAIL = 16;

        final ByteBuf[] ring = new ByteBuf[SLOTS];
        // The producer's and the consumer's counters, 128 bytes apart so they never share a cache line.
        final AtomicLongArray counters = new AtomicLongArray(32);

        /** Picks the allocator. */
        @Setup(Level.Trial)
        public void setUp() {
            switch (allocator) {
                case "pooled-direct":
                    alloc = PooledByteBufAllocator.DEFAULT;
                    direct = true;
                    break;
                case "unpooled-direct":
                    alloc = UnpooledByteBufAllocator.DEFAULT;
                    direct = true;
                    break;
                case "unpooled-heap":
                    alloc = UnpooledByteBufAllocator.DEFAULT;
                    direct = false;
                    break;
                default:
                    throw new IllegalArgumentException("unknown allocator: " + allocator);
            }
        }

        /** Releases what is left in the ring when an iteration ends (both threads have returned by then). */
        @TearDown(Level.Iteration)
        public void drain() {
            long head = counters.get(HEAD);
            for (long t = counters.get(TAIL); t < head; t++) {
                int i = (int) (t & (SLOTS - 1));
                ring[i].release();
                ring[i] = null;
            }
            counters.set(TAIL, head);
        }

        boolean offer(ByteBuf b) {
            long h = counters.get(HEAD);
            if (h - counters.get(TAIL) == SLOTS) {
                return false;
            }
            ring[(int) (h & (SLOTS - 1))] = b;
            counters.lazySet(HEAD, h + 1);
            return true;
        }

        ByteBuf poll() {
            long t = counters.get(TAIL);
            if (t == counters.get(HEAD)) {
                return null;
            }
            int i = (int) (t & (SLOTS - 1));
            ByteBuf b = ring[i];
            ring[i] = null;
            counters.lazySet(TAIL, t + 1);
            return b;
        }
    }

    /** Reader thread: allocate, fill, hand over (spins while the ring is full). */
    @Benchmark
    @Group("handoff")
    @GroupThreads(1)
    public void handoffProduce(Handoff h, Source src, Control control) {
        ByteBuf b = h.direct ? h.alloc.directBuffer(SIZE) : h.alloc.heapBuffer(SIZE);
        b.writeBytes(src.bytes);
        while (!h.offer(b)) {
            if (control.stopMeasurement) {
                b.release();
                return;
            }
            Thread.onSpinWait();
        }
    }

    /** Writer thread: take a buffer and release it (spins while the ring is empty). */
    @Benchmark
    @Group("handoff")
    @GroupThreads(1)
    public void handoffConsume(Handoff h, Control control) {
        ByteBuf b;
        while ((b = h.poll()) == null) {
            if (control.stopMeasurement) {
                return;
            }
            Thread.onSpinWait();
        }
        b.release();
    }
}
