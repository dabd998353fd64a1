package io.overlay4j.bench;

import io.overlay4j.udp.internal.Checksums;
import io.overlay4j.udp.internal.TcpCoalescer;
import io.overlay4j.udp.internal.TcpSegmenter;
import io.overlay4j.udp.internal.VirtioNetHeader;
import io.overlay4j.udp.testing.TcpPackets;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The offload path's per-super-packet work, at 1,400 B (one segment) and 64 KB (46 segments of 1,420 payload bytes,
 * a TUN MTU of 1,472 with TCP timestamps):
 * <ul>
 *   <li>{@code checksum}: the one's-complement sum over that many bytes ({@code Checksums.checksum});</li>
 *   <li>{@code split}: {@code TcpSegmenter.segment} of a virtio-header {@code GSO_TCPV4} super-packet into complete
 *   IPv4/TCP packets with full checksums (egress, before the GSO send);</li>
 *   <li>{@code coalesce}: offering those packets to a {@code TcpCoalescer} (IP and TCP checksums verified, packets
 *   copied into its arena) and flushing the merged super-packet to a sink that only consumes it (ingress, before the
 *   TUN write).</li>
 * </ul>
 * All three allocate nothing ({@code -prof gc}).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Thread)
public class OffloadBenchmark {
    private static final int MTU = 1472;
    private static final int HEADERS = 20 + 32;
    private static final int MSS = MTU - HEADERS;

    /** IPv4 packet size of the super-packet: 1,400 B or 64 KB. */
    @Param({"1400", "65000"})
    public int size;

    private ByteBuffer superPacket;
    private int superLength;
    private ByteBuffer segments;
    private int[] segmentOffsets;
    private int[] segmentLengths;
    private final TcpSegmenter segmenter = new TcpSegmenter(MTU);
    private final TcpCoalescer coalescer = TcpCoalescer.withDefaults();
    private Blackhole sinkHole;
    private TcpCoalescer.Sink sink;

    /** Builds the super-packet and, once, its segments. */
    @Setup
    public void setUp(Blackhole bh) {
        TcpPackets.Spec spec = new TcpPackets.Spec();
        spec.payload = size - HEADERS;
        byte[] packet = spec.build();
        // What a TSO TUN read returns: NEEDS_CSUM with the pseudo-header sum in the TCP checksum field.
        TcpPackets.putShort(packet, 36, TcpPackets.pseudoHeaderPartial(packet, 0));
        byte[] vnet = TcpPackets.vnet(VirtioNetHeader.FLAG_NEEDS_CSUM, VirtioNetHeader.GSO_TCPV4, HEADERS, MSS, 20,
                VirtioNetHeader.TCP_CSUM_OFFSET);
        byte[] frame = TcpPackets.concat(vnet, packet);
        superPacket = ByteBuffer.allocateDirect(frame.length).put(frame).flip();
        superLength = frame.length;
        segments = ByteBuffer.allocateDirect(2 * TcpSegmenter.MAX_PACKET);
        TcpSegmenter.Result r = segmenter.segment(superPacket, 0, superLength, segments, 0);
        if (r != TcpSegmenter.Result.SEGMENTED) {
            throw new IllegalStateException("setup packet not segmented: " + r);
        }
        int n = segmenter.segmentCount();
        segmentOffsets = new int[n];
        segmentLengths = new int[n];
        for (int i = 0; i < n; i++) {
            segmentOffsets[i] = i * segmenter.segmentLength();
            segmentLengths[i] = i == n - 1 ? segmenter.lastSegmentLength() : segmenter.segmentLength();
        }
        // Keep a pristine copy of the segments: coalesce reads them, split rewrites the same bytes.
        ByteBuffer copy = ByteBuffer.allocateDirect(segmenter.outputLength());
        copy.put(segments.duplicate().limit(segmenter.outputLength()).position(0)).flip();
        segments = copy;
        sinkHole = bh;
        sink = (buf, offset, length, frameCount, frameBytes) -> sinkHole.consume(buf.get(offset + length - 1));
    }

    /** The checksum over {@code size} bytes. */
    @Benchmark
    public int checksum() {
        return Checksums.checksum(superPacket, VirtioNetHeader.LENGTH, size);
    }

    /** Egress: split the super-packet into MTU-sized packets with full checksums. */
    @Benchmark
    public int split(SplitOutput out) {
        TcpSegmenter.Result r = segmenter.segment(superPacket, 0, superLength, out.buffer, 0);
        return r.ordinal() + segmenter.segmentCount();
    }

    /** Ingress: verify, merge and emit the segments as one super-packet. */
    @Benchmark
    public int coalesce() {
        for (int i = 0; i < segmentOffsets.length; i++) {
            coalescer.offer(segments, segmentOffsets[i], segmentLengths[i]);
        }
        return coalescer.flush(sink);
    }

    /** The split's own output buffer. */
    @State(Scope.Thread)
    public static class SplitOutput {
        final ByteBuffer buffer = ByteBuffer.allocateDirect(2 * TcpSegmenter.MAX_PACKET);
    }
}
