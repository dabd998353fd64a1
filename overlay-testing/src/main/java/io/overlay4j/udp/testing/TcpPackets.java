package io.overlay4j.udp.testing;

import java.nio.ByteOrder;

/**
 * Builds and checks IPv4/TCP packets and virtio-net headers for tests, independently of the production code: plain
 * byte arrays, big-endian by hand, checksums by {@link Packets#referenceChecksum} (16-bit words, one at a time).
 *
 * <p>Payload bytes follow a stream pattern: the byte at TCP sequence number {@code s} is {@link #streamByte(int)}, so
 * any split or merge of a stream can be checked byte by byte.
 */
public final class TcpPackets {
    /** FIN. */
    public static final int FIN = 0x01;
    /** SYN. */
    public static final int SYN = 0x02;
    /** RST. */
    public static final int RST = 0x04;
    /** PSH. */
    public static final int PSH = 0x08;
    /** ACK. */
    public static final int ACK = 0x10;
    /** URG. */
    public static final int URG = 0x20;
    /** ECE. */
    public static final int ECE = 0x40;
    /** CWR. */
    public static final int CWR = 0x80;

    /** A TCP timestamp option, padded with two NOPs: 12 bytes as Linux sends them on every data segment. */
    public static final byte[] TIMESTAMPS = Packets.hex("0101080a 0012d687 0a0b0c0d");

    private TcpPackets() {
    }

    /** The stream pattern byte at sequence number {@code seq}. */
    public static byte streamByte(int seq) {
        return (byte) (seq * 0x9e3779b1 >>> 24);
    }

    /** A mutable description of one IPv4/TCP packet; {@link #build()} gives bytes with correct checksums. */
    public static final class Spec {
        public int src = Packets.addr(100, 96, 1, 2);
        public int dst = Packets.addr(100, 96, 2, 3);
        public int sport = 40000;
        public int dport = 5201;
        public int seq = 0x10000000;
        public int ack = 0x20000000;
        public int flags = ACK;
        public byte[] options = TIMESTAMPS;
        public int payload = 100;
        public int id = 0x1234;
        public int tos = 0;
        public int ttl = 64;
        public boolean df = true;
        public int window = 0x1f5;

        /** A copy. */
        public Spec copy() {
            Spec s = new Spec();
            s.src = src;
            s.dst = dst;
            s.sport = sport;
            s.dport = dport;
            s.seq = seq;
            s.ack = ack;
            s.flags = flags;
            s.options = options.clone();
            s.payload = payload;
            s.id = id;
            s.tos = tos;
            s.ttl = ttl;
            s.df = df;
            s.window = window;
            return s;
        }

        /** The packet with correct IP and TCP checksums. */
        public byte[] build() {
            int thl = 20 + options.length;
            int total = 20 + thl + payload;
            byte[] p = new byte[total];
            p[0] = 0x45;
            p[1] = (byte) tos;
            putShort(p, 2, total);
            putShort(p, 4, id);
            p[6] = (byte) (df ? 0x40 : 0);
            p[8] = (byte) ttl;
            p[9] = 6;
            Packets.putInt(p, 12, src);
            Packets.putInt(p, 16, dst);
            Packets.setHeaderChecksum(p, 0);
            putShort(p, 20, sport);
            putShort(p, 22, dport);
            Packets.putInt(p, 24, seq);
            Packets.putInt(p, 28, ack);
            p[32] = (byte) (thl / 4 << 4);
            p[33] = (byte) flags;
            putShort(p, 34, window);
            System.arraycopy(options, 0, p, 40, options.length);
            for (int i = 0; i < payload; i++) {
                p[20 + thl + i] = streamByte(seq + i);
            }
            putShort(p, 36, tcpChecksum(p, 0));
            return p;
        }
    }

    /** A 16-bit big-endian write. */
    public static void putShort(byte[] p, int off, int v) {
        p[off] = (byte) (v >>> 8);
        p[off + 1] = (byte) v;
    }

    /** A 16-bit big-endian read. */
    public static int getShort(byte[] p, int off) {
        return (p[off] & 0xff) << 8 | p[off + 1] & 0xff;
    }

    /** A 32-bit big-endian read. */
    public static int getInt(byte[] p, int off) {
        return getShort(p, off) << 16 | getShort(p, off + 2);
    }

    /**
     * The L4 checksum (TCP or UDP) of the IPv4 packet at {@code off} as it must be stored: pseudo-header plus segment
     * (its total length from the IP header) with the checksum field taken as zero.
     */
    public static int tcpChecksum(byte[] p, int off) {
        byte[] copy = pseudoPlusSegment(p, off);
        int field = 12 + ((p[off + 9] & 0xff) == 17 ? 6 : 16);
        copy[field] = 0;
        copy[field + 1] = 0;
        return Packets.referenceChecksum(copy, 0, copy.length);
    }

    /** Whether the L4 checksum of the IPv4 packet at {@code off} verifies. */
    public static boolean l4ChecksumOk(byte[] p, int off) {
        byte[] copy = pseudoPlusSegment(p, off);
        return Packets.referenceChecksum(copy, 0, copy.length) == 0;
    }

    /** The 16-bit sum (not complemented) of the pseudo-header alone, folded: what a NEEDS_CSUM field holds. */
    public static int pseudoHeaderPartial(byte[] p, int off) {
        int ihl = (p[off] & 0xf) * 4;
        int l4 = getShort(p, off + 2) - ihl;
        byte[] ph = new byte[12];
        System.arraycopy(p, off + 12, ph, 0, 8);
        ph[9] = p[off + 9];
        putShort(ph, 10, l4);
        return ~Packets.referenceChecksum(ph, 0, 12) & 0xffff;
    }

    private static byte[] pseudoPlusSegment(byte[] p, int off) {
        int ihl = (p[off] & 0xf) * 4;
        int l4 = getShort(p, off + 2) - ihl;
        byte[] b = new byte[12 + l4];
        System.arraycopy(p, off + 12, b, 0, 8);
        b[9] = p[off + 9];
        putShort(b, 10, l4);
        System.arraycopy(p, off + ihl, b, 12, l4);
        return b;
    }

    /**
     * A virtio-net header in the CPU's byte order (10 bytes).
     */
    public static byte[] vnet(int flags, int gsoType, int hdrLen, int gsoSize, int csumStart, int csumOffset) {
        byte[] h = new byte[10];
        h[0] = (byte) flags;
        h[1] = (byte) gsoType;
        putHost(h, 2, hdrLen);
        putHost(h, 4, gsoSize);
        putHost(h, 6, csumStart);
        putHost(h, 8, csumOffset);
        return h;
    }

    /** A 16-bit host-order read from a virtio-net header. */
    public static int getHost(byte[] h, int off) {
        return ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN
                ? (h[off] & 0xff) | (h[off + 1] & 0xff) << 8 : getShort(h, off);
    }

    private static void putHost(byte[] h, int off, int v) {
        if (ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN) {
            h[off] = (byte) v;
            h[off + 1] = (byte) (v >>> 8);
        } else {
            putShort(h, off, v);
        }
    }

    /** {@code a} followed by {@code b}. */
    public static byte[] concat(byte[] a, byte[] b) {
        byte[] c = new byte[a.length + b.length];
        System.arraycopy(a, 0, c, 0, a.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
