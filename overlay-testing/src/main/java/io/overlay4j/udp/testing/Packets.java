package io.overlay4j.udp.testing;

import java.util.HexFormat;

/** Builds and checks IPv4 packets for tests, independently of the production code. */
public final class Packets {
    private Packets() {
    }

    /** Bytes from hex, spaces ignored. */
    public static byte[] hex(String hex) {
        return HexFormat.of().parseHex(hex.replace(" ", ""));
    }

    /** Hex of bytes, 4-byte groups separated by spaces, as the flannel docs write them. */
    public static String hex(byte[] bytes) {
        String h = HexFormat.of().formatHex(bytes);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < h.length(); i += 8) {
            if (i > 0) {
                sb.append(' ');
            }
            sb.append(h, i, Math.min(i + 8, h.length()));
        }
        return sb.toString();
    }

    /** An IPv4 address as a network-order int, e.g. {@code addr(10, 5, 1, 2)}. */
    public static int addr(int a, int b, int c, int d) {
        return a << 24 | b << 16 | c << 8 | d;
    }

    /**
     * An IPv4 packet with a 20-byte header, a correct header checksum and {@code payload[i] = i + 20} bytes.
     *
     * @param length the total length, at least 20
     */
    public static byte[] ipv4(int src, int dst, int protocol, int ttl, int length) {
        byte[] p = new byte[length];
        p[0] = 0x45;
        p[2] = (byte) (length >>> 8);
        p[3] = (byte) length;
        p[4] = 0x12;
        p[5] = 0x34;
        p[6] = 0x40;
        p[8] = (byte) ttl;
        p[9] = (byte) protocol;
        putInt(p, 12, src);
        putInt(p, 16, dst);
        for (int i = 20; i < length; i++) {
            p[i] = (byte) i;
        }
        setHeaderChecksum(p, 0);
        return p;
    }

    /**
     * An IPv4 UDP packet (20-byte header with a correct checksum, TTL 64, UDP checksum 0, which IPv4 allows) carrying
     * {@code payload}.
     */
    public static byte[] udp(int src, int srcPort, int dst, int dstPort, byte[] payload) {
        byte[] p = ipv4(src, dst, 17, 64, 28 + payload.length);
        p[20] = (byte) (srcPort >>> 8);
        p[21] = (byte) srcPort;
        p[22] = (byte) (dstPort >>> 8);
        p[23] = (byte) dstPort;
        p[24] = (byte) ((8 + payload.length) >>> 8);
        p[25] = (byte) (8 + payload.length);
        p[26] = 0;
        p[27] = 0;
        System.arraycopy(payload, 0, p, 28, payload.length);
        return p;
    }

    /** Writes a 32-bit big-endian value. */
    public static void putInt(byte[] p, int off, int v) {
        p[off] = (byte) (v >>> 24);
        p[off + 1] = (byte) (v >>> 16);
        p[off + 2] = (byte) (v >>> 8);
        p[off + 3] = (byte) v;
    }

    /** The RFC 1071 checksum of {@code len} bytes the straightforward way: 16-bit words, fold at each step. */
    public static int referenceChecksum(byte[] p, int off, int len) {
        int sum = 0;
        for (int i = 0; i < len; i += 2) {
            int word = (p[off + i] & 0xff) << 8 | (i + 1 < len ? p[off + i + 1] & 0xff : 0);
            sum += word;
            if (sum > 0xffff) {
                sum = (sum & 0xffff) + 1;
            }
        }
        return ~sum & 0xffff;
    }

    /** Recomputes the IPv4 header checksum of the header at {@code off} from scratch. */
    public static void setHeaderChecksum(byte[] p, int off) {
        int ihl = (p[off] & 0xf) * 4;
        p[off + 10] = 0;
        p[off + 11] = 0;
        int c = referenceChecksum(p, off, ihl);
        p[off + 10] = (byte) (c >>> 8);
        p[off + 11] = (byte) c;
    }

    /** Whether the header at {@code off} has a correct checksum (its one's complement sum is 0xffff). */
    public static boolean headerChecksumOk(byte[] p, int off) {
        int ihl = (p[off] & 0xf) * 4;
        return referenceChecksum(p, off, ihl) == 0;
    }

    /** A copy with the TTL decremented by {@code n} and the header checksum recomputed from scratch. */
    public static byte[] withTtlDecremented(byte[] p, int n) {
        byte[] q = p.clone();
        q[8] = (byte) ((q[8] & 0xff) - n);
        setHeaderChecksum(q, 0);
        return q;
    }
}
