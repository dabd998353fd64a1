package io.overlay4j.bench;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.overlay4j.udp.internal.Checksums;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;
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
 *   <li>{@link #headerChecksum}: {@code Ipv4Header.computeChecksum}, the full RFC 1071 sum over the 20-byte header;</li>
 *   <li>{@link #headerChecksumValid}: {@code Ipv4Header.isChecksumValid}, the same sum as a verification;</li>
 *   <li>{@link #incrementalTtl}: {@code Ipv4Header.decrementTtl}, the RFC 1624 incremental update the data path
 *   uses, plus the restore of the TTL/protocol/checksum word (one 32-bit store) so the TTL never runs out;</li>
 *   <li>{@link #checksum1400}: {@code Checksums.checksum} over all 1,400 bytes, the size of work a full TCP or UDP
 *   checksum (segmentation, coalescing) would cost per packet.</li>
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
}
