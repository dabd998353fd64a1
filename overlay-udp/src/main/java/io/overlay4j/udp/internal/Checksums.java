package io.overlay4j.udp.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The Internet checksum (RFC 1071) over a region of a {@link ByteBuffer}, by absolute index. Sums 32-bit words into a
 * {@code long} (no carry handling needed inside the loop: 2^32 words would be needed to overflow) and folds at the
 * end, which gives the same one's complement 16-bit sum as adding 16-bit words.
 */
public final class Checksums {
    private Checksums() {
    }

    /**
     * The unfolded sum of {@code length} bytes from {@code offset}, as 16-bit big-endian words, an odd last byte padded
     * with zero. Fold it with {@link #fold}.
     */
    public static long sum(ByteBuffer buf, int offset, int length) {
        boolean bigEndian = buf.order() == ByteOrder.BIG_ENDIAN;
        long sum = 0;
        int i = offset;
        int end = offset + length;
        for (; i + 4 <= end; i += 4) {
            int v = buf.getInt(i);
            sum += (bigEndian ? v : Integer.reverseBytes(v)) & 0xffffffffL;
        }
        if (i + 2 <= end) {
            sum += (buf.get(i) & 0xff) << 8 | buf.get(i + 1) & 0xff;
            i += 2;
        }
        if (i < end) {
            sum += (buf.get(i) & 0xff) << 8;
        }
        return sum;
    }

    /** Folds a sum from {@link #sum} into 16 bits with end-around carries. */
    public static int fold(long sum) {
        sum = (sum & 0xffffffffL) + (sum >>> 32);
        sum = (sum & 0xffffffffL) + (sum >>> 32);
        int s = (int) ((sum & 0xffff) + (sum >>> 16));
        s = (s & 0xffff) + (s >>> 16);
        return (s & 0xffff) + (s >>> 16);
    }

    /** The checksum to store: the complement of the folded sum of {@code length} bytes (checksum field zeroed). */
    public static int checksum(ByteBuffer buf, int offset, int length) {
        return ~fold(sum(buf, offset, length)) & 0xffff;
    }
}
