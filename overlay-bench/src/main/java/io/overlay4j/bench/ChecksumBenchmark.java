package io.overlay4j.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.overlay4j.udp.internal.Checksums;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The checksum routines of {@code io.overlay4j.udp.internal} on a pooled direct buffer holding a 1,400-byte IPv4
 * packet:
 * <ul>
 *   <li>{@link #headerChecksum}: {@code Ipv4Header.computeChecksum}, the full RFC 1071 sum over the 20-byte
 *   header;</li>
 *   <li>{@link #headerChecksumValid}: {@code Ipv4Header.isChecksumValid}, the same sum as a verification;</li>
 *   <li>{@link #incrementalTtl}: {@code Ipv4Header.decrementTtl}, the RFC 1624 incremental update the data path
 *   uses, plus the restore of the TTL/protocol/checksum word (one 32-bit store) so the TTL never runs out;</li>
 *   <li>{@link #checksum1400}: {@code Checksums.checksum} over all 1,400 bytes, the size of work a full TCP or UDP
 *   checksum (segmentation, coalescing) would cost per packet;</li>
 *   <li>{@link #checksum1400NativeLong}: <em>not library code</em>, a candidate for {@code Checksums.sum} kept here
 *   for comparison: 64-bit reads in the CPU's byte order (no byte swap per word), two 32-bit halves added into a
 *   {@code long}, the folded 16-bit result byte-swapped once at the end (RFC 1071 section 2(B): the one's
 *   complement sum is byte-order independent). Checked against {@code Checksums.checksum} in setup.</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Thread)
public class ChecksumBenchmark {
    private static final int SIZE = 1400;

    private ByteBuf buf;
    private ByteBuffer packet;
    private int base;
    private int ttlWord;
    private ByteBuffer nativeOrder;

    /** Writes the packet into a pooled direct buffer. */
    @Setup(Level.Trial)
    public void setUp() {
        buf = PooledByteBufAllocator.DEFAULT.directBuffer(SIZE, SIZE);
        packet = buf.internalNioBuffer(0, SIZE);
        base = packet.position();
        packet.put(base, Fixtures.ipv4(Fixtures.subnetOf(1) | 2, Fixtures.subnetOf(2) | 3, SIZE));
        ttlWord = packet.getInt(base + Ipv4Header.TTL_OFFSET);
        if (!Ipv4Header.isChecksumValid(packet, base)) {
            throw new IllegalStateException("bad header checksum");
        }
        nativeOrder = packet.duplicate().order(ByteOrder.nativeOrder());
        for (int length = 0; length <= SIZE; length++) {
            if (nativeLongChecksum(nativeOrder, base, length) != Checksums.checksum(packet, base, length)) {
                throw new IllegalStateException("the candidate checksum differs at length " + length);
            }
        }
    }

    /** Releases the buffer. */
    @TearDown(Level.Trial)
    public void tearDown() {
        buf.release();
    }

    /** Full header checksum computation (20 bytes). */
    @Benchmark
    public int headerChecksum() {
        return Ipv4Header.computeChecksum(packet, base);
    }

    /** Header checksum verification (20 bytes). */
    @Benchmark
    public boolean headerChecksumValid() {
        return Ipv4Header.isChecksumValid(packet, base);
    }

    /** RFC 1624 TTL decrement with incremental checksum update, then the one-store restore. */
    @Benchmark
    public int incrementalTtl() {
        Ipv4Header.decrementTtl(packet, base);
        int checksum = Ipv4Header.checksum(packet, base);
        packet.putInt(base + Ipv4Header.TTL_OFFSET, ttlWord);
        return checksum;
    }

    /** RFC 1071 checksum over 1,400 bytes. */
    @Benchmark
    public int checksum1400() {
        return Checksums.checksum(packet, base, SIZE);
    }

    /** The candidate 64-bit native-order checksum over 1,400 bytes (see the class comment). */
    @Benchmark
    public int checksum1400NativeLong() {
        return nativeLongChecksum(nativeOrder, base, SIZE);
    }

    /** Candidate: sum 8-byte native-order words, fold, swap to network order once, add the tail big-endian. */
    static int nativeLongChecksum(ByteBuffer buf, int offset, int length) {
        long sum = 0;
        int i = offset;
        int end = offset + length;
        for (; i + 8 <= end; i += 8) {
            long v = buf.getLong(i);
            sum += (v & 0xffffffffL) + (v >>> 32);
        }
        int folded = Checksums.fold(sum);
        if (buf.order() == ByteOrder.LITTLE_ENDIAN) {
            folded = Integer.reverseBytes(folded) >>> 16;
        }
        return ~Checksums.fold(folded + Checksums.sum(buf, i, end - i)) & 0xffff;
    }
}
