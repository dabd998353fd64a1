package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

import java.net.Inet4Address;

/**
 * A vxlan device's settings: what {@link NetlinkRouteProgrammer#createVxlan} creates and
 * {@link NetlinkRouteProgrammer#vxlanLink} reads back ({@code ip -d link show type vxlan}).
 *
 * @param index         the interface index (0 in a creation request)
 * @param name          the device name, e.g. {@code flannel.1}
 * @param vni           the VXLAN network identifier, 0..16777215
 * @param underlayIndex the index of the device the tunnel uses ({@code dev eth0}), or 0 for none
 * @param local         the source address of encapsulated packets ({@code local}), or {@code null}
 * @param group         the multicast group or unicast remote ({@code group}/{@code remote}), or {@code null}
 * @param port          the destination UDP port ({@code dstport}); 0 in a request leaves the kernel's default, 8472
 * @param learning      whether the device learns remote MACs from received packets
 * @param gbp           whether the Group Based Policy extension is on
 * @param l2miss        whether the device reports link-layer misses to user space
 * @param l3miss        whether the device reports IP misses to user space
 * @param mtu           the device MTU; 0 in a request leaves the kernel's choice (underlay MTU − 50)
 * @param mac           the device's MAC in lower-case colon form; {@code null} in a request lets the kernel pick one
 */
public record VxlanLink(int index, String name, int vni, int underlayIndex, Inet4Address local, Inet4Address group,
                        int port, boolean learning, boolean gbp, boolean l2miss, boolean l3miss, int mtu, String mac) {
    /** The largest VNI: VNIs are 24 bits. */
    public static final int MAX_VNI = (1 << 24) - 1;

    public VxlanLink {
        requireNonNull(name, "name");
        if (vni < 0 || vni > MAX_VNI) {
            throw new IllegalArgumentException("VNI must be 0.." + MAX_VNI + ": " + vni);
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be 0..65535: " + port);
        }
        if (mtu < 0) {
            throw new IllegalArgumentException("MTU must not be negative: " + mtu);
        }
    }

    /**
     * A creation request for a unicast vxlan device without group, L2/L3 miss reports, as flannel's vxlan backend
     * creates {@code flannel.<VNI>}.
     *
     * @param port 0 for the kernel default (8472)
     * @param mtu  0 for the kernel's choice
     * @param mac  {@code null} for a kernel-chosen random address
     */
    public static VxlanLink request(String name, int vni, int underlayIndex, Inet4Address local, int port,
                                    boolean learning, boolean gbp, int mtu, String mac) {
        return new VxlanLink(0, name, vni, underlayIndex, local, null, port, learning, gbp, false, false, mtu, mac);
    }

    /**
     * {@code ip -d link}'s wording, e.g.
     * {@code flannel.1 mtu 1450 link/ether 0a:..:01 vxlan id 1 local 10.168.0.2 dev if2 dstport 8472 nolearning}.
     */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(name);
        if (mtu > 0) {
            sb.append(" mtu ").append(mtu);
        }
        if (mac != null) {
            sb.append(" link/ether ").append(mac);
        }
        sb.append(" vxlan id ").append(vni);
        if (group != null) {
            sb.append(" group ").append(group.getHostAddress());
        }
        if (local != null) {
            sb.append(" local ").append(local.getHostAddress());
        }
        if (underlayIndex > 0) {
            sb.append(" dev if").append(underlayIndex);
        }
        if (port > 0) {
            sb.append(" dstport ").append(port);
        }
        sb.append(learning ? "" : " nolearning");
        sb.append(l2miss ? " l2miss" : "").append(l3miss ? " l3miss" : "").append(gbp ? " gbp" : "");
        return sb.toString();
    }
}
