package io.overlay4j.tun;

import static io.overlay4j.tun.internal.Rtnetlink.*;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.tun.internal.LibC;
import java.net.Inet4Address;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * Decodes rtnetlink messages (links, routes, neighbours, FDB entries) into overlay4j's records; shared by
 * {@link NetlinkRouteProgrammer}'s dumps and {@link NetlinkMonitor}'s notifications. Offsets are those of the
 * message's {@code nlmsghdr} within the buffer.
 */
final class RtMessages {
    private RtMessages() {
    }

    /** A {@code RTM_NEWLINK}/{@code RTM_DELLINK} message as a {@link Link}. */
    static Link link(ByteBuffer b, int off, int len) {
        int body = off + NLMSG_HDRLEN;
        int index = b.getInt(body + 4);
        int flags = b.getInt(body + 8);
        String name = "";
        String kind = "";
        String mac = "";
        int mtu = 0;
        int master = 0;
        for (int a = body + IFINFOMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
            switch (attrType(b, a)) {
                case IFLA_IFNAME: name = string(b, a); break;
                case IFLA_MTU: mtu = b.getInt(a + 4); break;
                case IFLA_MASTER: master = b.getInt(a + 4); break;
                case IFLA_ADDRESS: mac = mac(b, a); break;
                case IFLA_LINKINFO:
                    int info = findNested(b, a, IFLA_INFO_KIND);
                    if (info >= 0) {
                        kind = string(b, info);
                    }
                    break;
                default: break;
            }
        }
        return new Link(index, name, flags, mtu, kind, mac, master);
    }

    /** A vxlan link's settings, or {@code null} if the message is not about a vxlan device. */
    static VxlanLink vxlan(ByteBuffer b, int off, int len) {
        Link link = link(b, off, len);
        if (!"vxlan".equals(link.kind())) {
            return null;
        }
        int vni = 0;
        int underlay = 0;
        Inet4Address local = null;
        Inet4Address group = null;
        int port = 0;
        boolean learning = false;
        boolean gbp = false;
        boolean l2miss = false;
        boolean l3miss = false;
        int body = off + NLMSG_HDRLEN;
        for (int a = body + IFINFOMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
            if (attrType(b, a) != IFLA_LINKINFO) {
                continue;
            }
            int data = findNested(b, a, IFLA_INFO_DATA);
            if (data < 0) {
                continue;
            }
            int end = data + (b.getShort(data) & 0xffff);
            for (int d = data + 4; d + 4 <= end; d = next(b, d)) {
                int payload = (b.getShort(d) & 0xffff) - 4;
                switch (attrType(b, d)) {
                    case IFLA_VXLAN_ID: vni = b.getInt(d + 4); break;
                    case IFLA_VXLAN_LINK: underlay = b.getInt(d + 4); break;
                    case IFLA_VXLAN_LOCAL: local = payload == 4 ? inet(b, d + 4) : null; break;
                    case IFLA_VXLAN_GROUP: group = payload == 4 ? inet(b, d + 4) : null; break;
                    case IFLA_VXLAN_PORT: port = (b.get(d + 4) & 0xff) << 8 | (b.get(d + 5) & 0xff); break;
                    case IFLA_VXLAN_LEARNING: learning = b.get(d + 4) != 0; break;
                    case IFLA_VXLAN_L2MISS: l2miss = b.get(d + 4) != 0; break;
                    case IFLA_VXLAN_L3MISS: l3miss = b.get(d + 4) != 0; break;
                    case IFLA_VXLAN_GBP: gbp = true; break;
                    default: break;
                }
            }
        }
        return new VxlanLink(link.index(), link.name(), vni, underlay, local, group, port, learning, gbp, l2miss,
                l3miss, link.mtu(), link.mac().isEmpty() ? null : link.mac());
    }

    /** The {@code IFLA_STATS64} counters of a link message, or all zeros if it has none. */
    static LinkStats stats(ByteBuffer b, int off, int len) {
        int body = off + NLMSG_HDRLEN;
        for (int a = body + IFINFOMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
            if (attrType(b, a) == IFLA_STATS64 && (b.getShort(a) & 0xffff) >= 4 + 64) {
                int s = a + 4;
                return new LinkStats(b.getLong(s), b.getLong(s + 8), b.getLong(s + 16), b.getLong(s + 24),
                        b.getLong(s + 48), b.getLong(s + 56));
            }
        }
        return new LinkStats(0, 0, 0, 0, 0, 0);
    }

    /**
     * A {@code RTM_NEWROUTE}/{@code RTM_DELROUTE} message as a {@link Route}, or {@code null} unless it is an IPv4
     * unicast route of table main (cached clones excluded).
     */
    static Route route(ByteBuffer b, int off, int len, Map<Integer, String> names) {
        int body = off + NLMSG_HDRLEN;
        if (b.get(body) != LibC.AF_INET) {
            return null;
        }
        int dstLen = b.get(body + 1) & 0xff;
        int table = b.get(body + 4) & 0xff;
        int protocol = b.get(body + 5) & 0xff;
        int scope = b.get(body + 6) & 0xff;
        int rtype = b.get(body + 7) & 0xff;
        int flags = b.getInt(body + 8);
        Inet4Address dst = null;
        Inet4Address gateway = null;
        Inet4Address src = null;
        int oif = 0;
        for (int a = body + RTMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
            switch (attrType(b, a)) {
                case RTA_DST: dst = inet(b, a + 4); break;
                case RTA_GATEWAY: gateway = inet(b, a + 4); break;
                case RTA_PREFSRC: src = inet(b, a + 4); break;
                case RTA_OIF: oif = b.getInt(a + 4); break;
                case RTA_TABLE: table = b.getInt(a + 4); break;
                default: break;
            }
        }
        if (table != RT_TABLE_MAIN || rtype != RTN_UNICAST || (flags & RTM_F_CLONED) != 0) {
            return null;
        }
        Ipv4Prefix prefix = dst == null ? Ipv4Prefix.of(0, 0) : Ipv4Prefix.of(dst, dstLen);
        return new Route(prefix, gateway, name(names, oif), scope, src, protocol == RTPROT_KERNEL,
                flags & RTNH_F_ONLINK);
    }

    /** A {@code RTM_NEWNEIGH}/{@code RTM_DELNEIGH} message of family AF_INET, or {@code null} for another family. */
    static Neighbour neighbour(ByteBuffer b, int off, int len, Map<Integer, String> names) {
        int body = off + NLMSG_HDRLEN;
        if (b.get(body) != LibC.AF_INET) {
            return null;
        }
        int index = b.getInt(body + 4);
        int state = b.getShort(body + 8) & 0xffff;
        Inet4Address dst = null;
        String mac = "";
        for (int a = body + NDMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
            int payload = (b.getShort(a) & 0xffff) - 4;
            if (attrType(b, a) == NDA_DST && payload == 4) {
                dst = inet(b, a + 4);
            } else if (attrType(b, a) == NDA_LLADDR) {
                mac = mac(b, a);
            }
        }
        return dst == null ? null : new Neighbour(dst, mac, name(names, index), index, state);
    }

    /** A {@code RTM_NEWNEIGH}/{@code RTM_DELNEIGH} message of family AF_BRIDGE, or {@code null} otherwise. */
    static FdbEntry fdb(ByteBuffer b, int off, int len, Map<Integer, String> names) {
        int body = off + NLMSG_HDRLEN;
        if (b.get(body) != AF_BRIDGE) {
            return null;
        }
        int index = b.getInt(body + 4);
        int state = b.getShort(body + 8) & 0xffff;
        int flags = b.get(body + 10) & 0xff;
        Inet4Address dst = null;
        String mac = null;
        for (int a = body + NDMSG_SIZE; a + 4 <= off + len; a = next(b, a)) {
            int payload = (b.getShort(a) & 0xffff) - 4;
            if (attrType(b, a) == NDA_DST && payload == 4) {
                dst = inet(b, a + 4);
            } else if (attrType(b, a) == NDA_LLADDR) {
                mac = mac(b, a);
            }
        }
        return mac == null ? null : new FdbEntry(mac, name(names, index), index, dst, state, flags);
    }

    private static String name(Map<Integer, String> names, int index) {
        String n = names.get(index);
        return n != null ? n : index == 0 ? "" : "if" + index;
    }

    /** The offset of the nested attribute {@code type} inside attribute {@code a}, or -1. */
    static int findNested(ByteBuffer b, int a, int type) {
        int end = a + (b.getShort(a) & 0xffff);
        for (int i = a + 4; i + 4 <= end; i = next(b, i)) {
            if (attrType(b, i) == type) {
                return i;
            }
        }
        return -1;
    }

    static int align(int len) {
        return (len + 3) & ~3;
    }

    static int next(ByteBuffer b, int attr) {
        int len = b.getShort(attr) & 0xffff;
        return attr + Math.max(4, align(len));
    }

    static int attrType(ByteBuffer b, int attr) {
        return b.getShort(attr + 2) & 0x3fff;
    }

    static Inet4Address inet(ByteBuffer b, int pos) {
        int v = (b.get(pos) & 0xff) << 24 | (b.get(pos + 1) & 0xff) << 16 | (b.get(pos + 2) & 0xff) << 8
                | (b.get(pos + 3) & 0xff);
        return Ipv4Prefix.fromInt(v);
    }

    /** A hardware-address attribute as lower-case colon-separated hex. */
    static String mac(ByteBuffer b, int attr) {
        int len = (b.getShort(attr) & 0xffff) - 4;
        StringBuilder sb = new StringBuilder(len * 3);
        for (int i = 0; i < len; i++) {
            if (i > 0) {
                sb.append(':');
            }
            int v = b.get(attr + 4 + i) & 0xff;
            sb.append(Character.forDigit(v >> 4, 16)).append(Character.forDigit(v & 0xf, 16));
        }
        return sb.toString();
    }

    /** A string attribute's value, without its NUL terminator. */
    static String string(ByteBuffer b, int attr) {
        int len = (b.getShort(attr) & 0xffff) - 4;
        byte[] bytes = new byte[len];
        b.get(attr + 4, bytes);
        int n = 0;
        while (n < len && bytes[n] != 0) {
            n++;
        }
        return new String(bytes, 0, n, StandardCharsets.UTF_8);
    }

    /**
     * Parses a MAC in lower- or upper-case colon form ({@code 0a:58:64:60:01:01}) into its 6 bytes.
     *
     * @throws IllegalArgumentException if it is not one
     */
    static byte[] parseMac(String mac) {
        if (mac == null || mac.length() != 17) {
            throw new IllegalArgumentException("not a MAC address (aa:bb:cc:dd:ee:ff): " + mac);
        }
        byte[] out = new byte[6];
        for (int i = 0; i < 6; i++) {
            int hi = Character.digit(mac.charAt(i * 3), 16);
            int lo = Character.digit(mac.charAt(i * 3 + 1), 16);
            if (hi < 0 || lo < 0 || (i < 5 && mac.charAt(i * 3 + 2) != ':')) {
                throw new IllegalArgumentException("not a MAC address (aa:bb:cc:dd:ee:ff): " + mac);
            }
            out[i] = (byte) (hi << 4 | lo);
        }
        return out;
    }
}
