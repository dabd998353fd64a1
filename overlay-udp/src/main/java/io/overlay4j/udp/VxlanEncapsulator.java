package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.Lease;
import io.overlay4j.udp.internal.Ipv4Header;
import java.nio.ByteBuffer;

/**
 * VXLAN (RFC 7348) as the Linux kernel's {@code vxlan} device and flannel's {@code vxlan} backend put it on the wire,
 * for a userspace data plane on a TUN device: each inner IPv4 packet travels in one UDP datagram to port 8472 behind
 * 22 bytes,
 *
 * <pre>
 *  VXLAN header (8):     flags 0x08 (I: the VNI is valid), 3 reserved bytes, VNI (24 bits), 1 reserved byte
 *  inner Ethernet (14):  destination = the peer's VtepMAC, source = this node's VtepMAC, EtherType 0x0800 (IPv4)
 * </pre>
 *
 * <p>The per-peer part, the Ethernet header with the peer's MAC, is built once from the peer's lease
 * ({@code "BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}, flannel-facts §4), read by
 * {@link VxlanLeaseData#parse} as the kernel vxlan backend reads it; a lease of another backend type, with
 * malformed BackendData, another VNI or a multicast or all-zero VtepMAC cannot be used and is skipped by the peer
 * table. Nothing else changes: no TTL decrement (a VXLAN endpoint is a link, the kernels at
 * both ends route and decrement), no checksum update.
 *
 * <p>Receiving, {@link #decapsulate} accepts exactly what a kernel VXLAN peer sends to this node and nothing else:
 * the flags word must be {@code 0x08000000} and the reserved byte after the VNI zero, as the kernel's device insists
 * without extensions (else {@link DropReason#BAD_ENCAPSULATION}), the VNI must be this network's and the inner
 * destination MAC this node's VtepMAC (else {@link DropReason#BAD_ENCAPSULATION}); the EtherType must be IPv4 (ARP,
 * IPv6 and the rest are {@link DropReason#NOT_IPV4}: no ARP is ever answered, the peers' neighbour entries are
 * permanent). Fewer than 22 bytes is {@link DropReason#RUNT}. The 22 bytes are then stripped.
 *
 * <p>Kernel VXLAN senders pick their UDP source port per flow from a range, so {@link #fixedSourcePort()} is false:
 * a receiver admits any source port from a lease's public address.
 *
 * <p>Immutable, thread-safe, allocation-free per packet.
 */
public final class VxlanEncapsulator implements Encapsulator {
    /** The backend type name in leases. */
    public static final String BACKEND_TYPE = "vxlan";
    /** The Linux kernel's VXLAN port, flannel's default. */
    public static final int DEFAULT_PORT = 8472;
    /** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
    public static final int OVERHEAD = 50;
    /** VXLAN (8) + inner Ethernet (14): the bytes in front of each inner packet. */
    public static final int HEADROOM = 22;
    /** The largest VNI: 24 bits. */
    public static final int MAX_VNI = 0xffffff;

    private static final int FLAGS_WORD = 0x08000000;
    private static final int ETHERTYPE_IPV4 = 0x0800;
    private static final int MAC_OFFSET = 8;
    private static final int ETHERTYPE_OFFSET = 20;

    private final int vni;
    private final byte[] mac;
    private final String macText;
    private final int macHigh;
    private final int macLow;

    private VxlanEncapsulator(int vni, byte[] mac) {
        this.vni = vni;
        this.mac = mac;
        this.macText = VxlanLeaseData.format(mac);
        this.macHigh = (mac[0] & 0xff) << 24 | (mac[1] & 0xff) << 16 | (mac[2] & 0xff) << 8 | (mac[3] & 0xff);
        this.macLow = (mac[4] & 0xff) << 8 | (mac[5] & 0xff);
    }

    /**
     * An encapsulator for the network with this VNI, as the node whose VTEP has this MAC (the {@code VtepMAC} it
     * publishes in its own lease).
     *
     * @param vni     0..16777215 (flannel's default is 1)
     * @param vtepMac a unicast MAC, e.g. {@code c6:d2:32:6f:8f:44} (any form {@link VxlanLeaseData#normalizeMac}
     *                reads)
     * @throws IllegalArgumentException for a VNI out of range or a malformed, multicast or all-zero MAC
     */
    public static VxlanEncapsulator of(int vni, String vtepMac) {
        if (vni < 0 || vni > MAX_VNI) {
            throw new IllegalArgumentException("VNI must be 0.." + MAX_VNI + ": " + vni);
        }
        VxlanLeaseData own = new VxlanLeaseData(vni, requireNonNull(vtepMac, "vtepMac"));
        requireUnicast(own);
        return new VxlanEncapsulator(vni, own.vtepMacBytes());
    }

    /**
     * A random locally administered unicast MAC in lower-case colon form, as flanneld gives a new {@code flannel.<VNI>}
     * device (first octet {@code (x & 0xfe) | 0x02}).
     */
    public static String randomVtepMac() {
        return VxlanLeaseData.randomMac();
    }

    /** The VNI. */
    public int vni() {
        return vni;
    }

    /** This node's VtepMAC, lower-case colon form. */
    public String vtepMac() {
        return macText;
    }

    /** The lease BackendData this node publishes: {@code {"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}. */
    public String backendData() {
        return new VxlanLeaseData(vni, macText).toJson();
    }

    /** {@inheritDoc} 8472. */
    @Override
    public int defaultPort() {
        return DEFAULT_PORT;
    }

    /** {@inheritDoc} 50. */
    @Override
    public int overhead() {
        return OVERHEAD;
    }

    /** {@inheritDoc} 22. */
    @Override
    public int headroom() {
        return HEADROOM;
    }

    /** {@inheritDoc} False: kernel VXLAN senders hash flows over a source port range. */
    @Override
    public boolean fixedSourcePort() {
        return false;
    }

    /**
     * {@inheritDoc} The 22 header bytes for the peer: this VNI, the lease's VtepMAC as destination, ours as source.
     *
     * @throws IllegalArgumentException if the lease is not of type vxlan, its BackendData is missing or not JSON, its
     *                                  VNI is missing or not this network's, or its VtepMAC is malformed or multicast
     */
    @Override
    public Object peerContext(Lease lease) {
        String type = lease.attributes().backendType();
        if (!BACKEND_TYPE.equals(type)) {
            throw new IllegalArgumentException("backend type " + (type == null ? "udp" : "'" + type + "'")
                    + ", not vxlan");
        }
        VxlanLeaseData data = VxlanLeaseData.parse(lease.attributes().backendData());
        if (data.vni() != vni) {
            throw new IllegalArgumentException("VNI " + data.vni() + ", this network's is " + vni);
        }
        requireUnicast(data);
        byte[] peerMac = data.vtepMacBytes();
        byte[] header = new byte[HEADROOM];
        header[0] = 0x08;
        header[4] = (byte) (vni >>> 16);
        header[5] = (byte) (vni >>> 8);
        header[6] = (byte) vni;
        System.arraycopy(peerMac, 0, header, MAC_OFFSET, 6);
        System.arraycopy(mac, 0, header, MAC_OFFSET + 6, 6);
        header[ETHERTYPE_OFFSET] = (byte) (ETHERTYPE_IPV4 >>> 8);
        header[ETHERTYPE_OFFSET + 1] = (byte) ETHERTYPE_IPV4;
        return new PeerHeader(header, data.vtepMac());
    }

    /** {@inheritDoc} Writes the peer's 22 header bytes in front of the packet; nothing else changes. */
    @Override
    public DropReason encapsulate(ByteBuffer packet, Object peerContext, int mtu) {
        int at = packet.position() - HEADROOM;
        packet.put(at, ((PeerHeader) peerContext).bytes);
        packet.position(at);
        return null;
    }

    /** {@inheritDoc} See the class comment for what is accepted. */
    @Override
    public DropReason decapsulate(ByteBuffer datagram, int mtu) {
        int at = datagram.position();
        if (datagram.limit() - at < HEADROOM) {
            return DropReason.RUNT;
        }
        if (Ipv4Header.getIntBigEndian(datagram, at) != FLAGS_WORD
                || Ipv4Header.getIntBigEndian(datagram, at + 4) != vni << 8
                || Ipv4Header.getIntBigEndian(datagram, at + MAC_OFFSET) != macHigh
                || Ipv4Header.getUnsignedShort(datagram, at + MAC_OFFSET + 4) != macLow) {
            return DropReason.BAD_ENCAPSULATION;
        }
        if (Ipv4Header.getUnsignedShort(datagram, at + ETHERTYPE_OFFSET) != ETHERTYPE_IPV4) {
            return DropReason.NOT_IPV4;
        }
        datagram.position(at + HEADROOM);
        return null;
    }

    private static void requireUnicast(VxlanLeaseData data) {
        if (!data.unicastMac()) {
            throw new IllegalArgumentException("VtepMAC " + data.vtepMac() + " is not a unicast address (a VTEP needs "
                    + "one: neither multicast, broadcast nor all zeros)");
        }
    }

    @Override
    public String toString() {
        return "VxlanEncapsulator[VNI " + vni + ", VtepMAC " + macText + ", port 8472, overhead 50]";
    }

    /** One peer's 22 header bytes; immutable (the array never leaves this class). */
    private static final class PeerHeader {
        final byte[] bytes;
        final String mac;

        PeerHeader(byte[] bytes, String mac) {
            this.bytes = bytes;
            this.mac = mac;
        }

        @Override
        public String toString() {
            return "vxlan peer " + mac;
        }
    }
}
