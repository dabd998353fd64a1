package io.overlay4j.bench;

import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.PeerTable;
import io.overlay4j.udp.VxlanEncapsulator;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.SplittableRandom;

/**
 * Packets, peer tables and destination streams shared by the benchmarks. Peers own /24 subnets of the overlay
 * network {@code 10.0.0.0/8} (peer {@code i} owns {@code 10.(i >> 8).(i & 255).0/24}, up to 65,536 peers), as a
 * flannel network with {@code SubnetLen 24} would; everything is built in setup, never in a measured method.
 */
final class Fixtures {
    /** The overlay network all peers share. */
    static final Ipv4Prefix NETWORK = Ipv4Prefix.parse("10.0.0.0/8");
    /** Length of the destination arrays: a power of two, so cycling is one mask. */
    static final int DESTINATIONS = 4096;
    /** The underlay address all benchmark peers publish (TEST-NET-1); no packet is sent to it. */
    static final int UNDERLAY_PEER = 0xC0000201;
    /** The largest number of peers {@link #peerTable} accepts: every /24 of the network. */
    static final int MAX_PEERS = 65536;

    private Fixtures() {
    }

    /** The network address of peer {@code i}'s subnet. */
    static int subnetOf(int i) {
        return NETWORK.networkInt() | (i & 0xffff) << 8;
    }

    /** A table of {@code n} udp peers 0..n-1, all reached at {@code publicIp:port}. */
    static PeerTable peerTable(int n, int publicIp, int port) {
        return peerTable(n, publicIp, port, FlannelUdpEncapsulator.INSTANCE, false);
    }

    /**
     * A table of {@code n} peers 0..n-1 for this encapsulator, reached at {@code publicIp:port}, or with
     * {@code spread} peer i at {@code (publicIp + i):port} (one host per lease, as in a real network); for VXLAN each
     * lease carries the encapsulator's VNI and a VtepMAC of its own.
     */
    static PeerTable peerTable(int n, int publicIp, int port, Encapsulator encapsulator, boolean spread) {
        if (n < 0 || n > MAX_PEERS) {
            throw new IllegalArgumentException("peers must be 0.." + MAX_PEERS + ": " + n);
        }
        Instant expiry = Instant.now().plusSeconds(86_400);
        PeerTable.Builder b = PeerTable.builder(encapsulator);
        if (encapsulator instanceof VxlanEncapsulator) {
            int vni = ((VxlanEncapsulator) encapsulator).vni();
            for (int i = 0; i < n; i++) {
                String mac = String.format("02:00:00:00:%02x:%02x", i >> 8 & 0xff, i & 0xff);
                LeaseAttributes attributes = new LeaseAttributes(Ipv4Prefix.fromInt(publicIp + (spread ? i : 0)),
                        null, "vxlan",
                        "{\"VNI\":" + vni + ",\"VtepMAC\":\"" + mac + "\"}");
                b.put(new Lease(Ipv4Prefix.of(subnetOf(i), 24), attributes, expiry), port);
            }
            return b.build();
        }
        for (int i = 0; i < n; i++) {
            LeaseAttributes attributes = LeaseAttributes.udp(Ipv4Prefix.fromInt(publicIp + (spread ? i : 0)));
            b.put(new Lease(Ipv4Prefix.of(subnetOf(i), 24), attributes, expiry), port);
        }
        return b.build();
    }

    /**
     * {@link #DESTINATIONS} host addresses, in random order: inside peers 0..n-1 ({@code hits}) or inside subnets of
     * the network no peer owns, peers n..65535 ({@code !hits}; needs {@code n < 65536}).
     */
    static int[] destinations(int n, boolean hits, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int[] d = new int[DESTINATIONS];
        for (int i = 0; i < d.length; i++) {
            int peer = hits ? random.nextInt(n) : n + random.nextInt(MAX_PEERS - n);
            d[i] = subnetOf(peer) | 1 + random.nextInt(254);
        }
        return d;
    }

    /**
     * An IPv4 packet of {@code length} bytes (20-byte header, valid checksum, UDP protocol number, TTL 64, DF) from
     * {@code src} to {@code dst}; the payload is arbitrary.
     */
    static byte[] ipv4(int src, int dst, int length) {
        if (length < Ipv4Header.MIN_LENGTH || length > 65535) {
            throw new IllegalArgumentException("length must be 20..65535: " + length);
        }
        ByteBuffer p = ByteBuffer.allocate(length);
        p.put(Ipv4Header.VERSION_IHL_OFFSET, (byte) 0x45);
        Ipv4Header.putShort(p, Ipv4Header.TOTAL_LENGTH_OFFSET, length);
        Ipv4Header.putShort(p, Ipv4Header.IDENTIFICATION_OFFSET, 0x1234);
        Ipv4Header.putShort(p, Ipv4Header.FRAGMENT_OFFSET, Ipv4Header.FLAG_DONT_FRAGMENT);
        p.put(Ipv4Header.TTL_OFFSET, (byte) 64);
        p.put(Ipv4Header.PROTOCOL_OFFSET, (byte) Ipv4Header.PROTOCOL_UDP);
        Ipv4Header.putIntBigEndian(p, Ipv4Header.SOURCE_OFFSET, src);
        Ipv4Header.putIntBigEndian(p, Ipv4Header.DESTINATION_OFFSET, dst);
        for (int i = Ipv4Header.MIN_LENGTH; i < length; i++) {
            p.put(i, (byte) i);
        }
        Ipv4Header.updateChecksum(p, 0);
        return p.array();
    }
}
