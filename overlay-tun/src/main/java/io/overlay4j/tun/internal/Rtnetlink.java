package io.overlay4j.tun.internal;

/**
 * rtnetlink message layouts and constants. Internal use only; no logic.
 *
 * <pre>
 * struct nlmsghdr (16 bytes)        struct ifinfomsg (16)       struct ifaddrmsg (8)     struct rtmsg (12)
 *  0 u32 nlmsg_len                    0 u8  ifi_family             0 u8  ifa_family        0 u8 rtm_family
 *  4 u16 nlmsg_type                   1 u8  pad                    1 u8  ifa_prefixlen     1 u8 rtm_dst_len
 *  6 u16 nlmsg_flags                  2 u16 ifi_type               2 u8  ifa_flags         2 u8 rtm_src_len
 *  8 u32 nlmsg_seq                    4 s32 ifi_index              3 u8  ifa_scope         3 u8 rtm_tos
 * 12 u32 nlmsg_pid                    8 u32 ifi_flags              4 u32 ifa_index         4 u8 rtm_table
 *                                    12 u32 ifi_change                                     5 u8 rtm_protocol
 * struct rtattr (4 + payload, padded to 4)                                                 6 u8 rtm_scope
 *  0 u16 rta_len  2 u16 rta_type                                                           7 u8 rtm_type
 *                                                                                          8 u32 rtm_flags
 * struct ndmsg (12)                 struct rtnl_link_stats64 (IFLA_STATS64), first fields, u64 each
 *  0 u8  ndm_family                   0 rx_packets   8 tx_packets  16 rx_bytes   24 tx_bytes
 *  1 u8  pad, 2 u16 pad              32 rx_errors   40 tx_errors  48 rx_dropped 56 tx_dropped
 *  4 s32 ndm_ifindex
 *  8 u16 ndm_state
 * 10 u8  ndm_flags
 * 11 u8  ndm_type
 * </pre>
 * All in native byte order; addresses in attributes are in network order.
 */
public final class Rtnetlink {
    private Rtnetlink() {
    }

    // <linux/netlink.h>
    /** {@code sizeof(struct nlmsghdr)}. */
    public static final int NLMSG_HDRLEN = 16;
    /** {@code NLMSG_ERROR}: an error or, with error 0, an acknowledgement. */
    public static final int NLMSG_ERROR = 2;
    /** {@code NLMSG_DONE}: the end of a dump. */
    public static final int NLMSG_DONE = 3;
    /** {@code NLM_F_REQUEST}. */
    public static final int NLM_F_REQUEST = 0x1;
    /** {@code NLM_F_MULTI}. */
    public static final int NLM_F_MULTI = 0x2;
    /** {@code NLM_F_ACK}. */
    public static final int NLM_F_ACK = 0x4;
    /** {@code NLM_F_DUMP_INTR}: the dump was interrupted by a change and is inconsistent. */
    public static final int NLM_F_DUMP_INTR = 0x10;
    /** {@code NLM_F_ROOT}. */
    public static final int NLM_F_ROOT = 0x100;
    /** {@code NLM_F_MATCH}. */
    public static final int NLM_F_MATCH = 0x200;
    /** {@code NLM_F_DUMP} = ROOT | MATCH. */
    public static final int NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
    /** {@code NLM_F_REPLACE}. */
    public static final int NLM_F_REPLACE = 0x100;
    /** {@code NLM_F_EXCL}. */
    public static final int NLM_F_EXCL = 0x200;
    /** {@code NLM_F_CREATE}. */
    public static final int NLM_F_CREATE = 0x400;
    /** {@code NLM_F_ACK_TLVS}: an error message carries extended-ack attributes. */
    public static final int NLM_F_ACK_TLVS = 0x200;
    /** {@code NLM_F_CAPPED}: an error message does not echo the request payload. */
    public static final int NLM_F_CAPPED = 0x100;
    /** {@code NLMSGERR_ATTR_MSG}: the extended-ack error text. */
    public static final int NLMSGERR_ATTR_MSG = 1;
    /** {@code NLA_F_NESTED}. */
    public static final int NLA_F_NESTED = 0x8000;
    /** {@code NLM_F_APPEND}. */
    public static final int NLM_F_APPEND = 0x800;

    // <linux/rtnetlink.h>: multicast groups as bind() masks (RTMGRP_*), for monitor sockets
    /** {@code RTMGRP_LINK}: link changes (RTNLGRP_LINK). */
    public static final int RTMGRP_LINK = 0x1;
    /** {@code RTMGRP_NEIGH}: neighbour and FDB changes (RTNLGRP_NEIGH). */
    public static final int RTMGRP_NEIGH = 0x4;
    /** {@code RTMGRP_IPV4_IFADDR}: IPv4 address changes. */
    public static final int RTMGRP_IPV4_IFADDR = 0x10;
    /** {@code RTMGRP_IPV4_ROUTE}: IPv4 route changes (RTNLGRP_IPV4_ROUTE). */
    public static final int RTMGRP_IPV4_ROUTE = 0x40;

    // <linux/rtnetlink.h>
    /** {@code RTM_NEWLINK}. */
    public static final int RTM_NEWLINK = 16;
    /** {@code RTM_DELLINK}. */
    public static final int RTM_DELLINK = 17;
    /** {@code RTM_GETLINK}. */
    public static final int RTM_GETLINK = 18;
    /** {@code RTM_NEWADDR}. */
    public static final int RTM_NEWADDR = 20;
    /** {@code RTM_DELADDR}. */
    public static final int RTM_DELADDR = 21;
    /** {@code RTM_GETADDR}. */
    public static final int RTM_GETADDR = 22;
    /** {@code RTM_NEWROUTE}. */
    public static final int RTM_NEWROUTE = 24;
    /** {@code RTM_DELROUTE}. */
    public static final int RTM_DELROUTE = 25;
    /** {@code RTM_GETROUTE}. */
    public static final int RTM_GETROUTE = 26;
    /** {@code RT_TABLE_MAIN}. */
    public static final int RT_TABLE_MAIN = 254;
    /** {@code RTPROT_UNSPEC}. */
    public static final int RTPROT_UNSPEC = 0;
    /** {@code RTPROT_KERNEL}: route installed by the kernel. */
    public static final int RTPROT_KERNEL = 2;
    /** {@code RTPROT_BOOT}: what {@code ip route add} uses. */
    public static final int RTPROT_BOOT = 3;
    /** {@code RT_SCOPE_NOWHERE}: in a delete request, matches any scope. */
    public static final int RT_SCOPE_NOWHERE = 255;
    /** {@code RTN_UNICAST}. */
    public static final int RTN_UNICAST = 1;
    /** {@code RTM_F_CLONED}: a cached clone, not a table route. */
    public static final int RTM_F_CLONED = 0x200;
    /** {@code RTA_DST}. */
    public static final int RTA_DST = 1;
    /** {@code RTA_OIF}. */
    public static final int RTA_OIF = 4;
    /** {@code RTA_GATEWAY}. */
    public static final int RTA_GATEWAY = 5;
    /** {@code RTA_PREFSRC}. */
    public static final int RTA_PREFSRC = 7;
    /** {@code RTA_TABLE}. */
    public static final int RTA_TABLE = 15;
    /** {@code RTNH_F_ONLINK}: the gateway is on the link ({@code onlink}). */
    public static final int RTNH_F_ONLINK = 4;
    /** {@code RTM_NEWNEIGH}. */
    public static final int RTM_NEWNEIGH = 28;
    /** {@code RTM_DELNEIGH}. */
    public static final int RTM_DELNEIGH = 29;
    /** {@code RTM_GETNEIGH}. */
    public static final int RTM_GETNEIGH = 30;

    // <linux/neighbour.h>
    /** {@code NDA_DST}: the neighbour's network address (for an FDB entry of a vxlan device: the remote VTEP). */
    public static final int NDA_DST = 1;
    /** {@code NDA_LLADDR}: the link-layer address. */
    public static final int NDA_LLADDR = 2;
    /** {@code NDA_PORT}: a vxlan FDB entry's destination UDP port (network order), when not the device's. */
    public static final int NDA_PORT = 6;
    /** {@code NDA_VNI}: a vxlan FDB entry's VNI, when not the device's. */
    public static final int NDA_VNI = 7;
    /** {@code NTF_SELF}: the FDB entry belongs to the device itself (a vxlan device's table), not its master. */
    public static final int NTF_SELF = 0x02;
    /** {@code NTF_MASTER}: the FDB entry belongs to the device's master (a bridge). */
    public static final int NTF_MASTER = 0x04;
    /** {@code NUD_PERMANENT}. */
    public static final int NUD_PERMANENT = 0x80;

    // <linux/socket.h>
    /** {@code AF_BRIDGE}: the family of FDB requests. */
    public static final int AF_BRIDGE = 7;

    // <linux/if_addr.h>
    /** {@code IFA_ADDRESS}: the peer address (the local one on non point-to-point links). */
    public static final int IFA_ADDRESS = 1;
    /** {@code IFA_LOCAL}: the local address. */
    public static final int IFA_LOCAL = 2;

    // <linux/if_link.h>
    /** {@code IFLA_ADDRESS}: the hardware address. */
    public static final int IFLA_ADDRESS = 1;
    /** {@code IFLA_IFNAME}. */
    public static final int IFLA_IFNAME = 3;
    /** {@code IFLA_MTU}. */
    public static final int IFLA_MTU = 4;
    /** {@code IFLA_TXQLEN}. */
    public static final int IFLA_TXQLEN = 13;
    /** {@code IFLA_STATS64}: a struct rtnl_link_stats64. */
    public static final int IFLA_STATS64 = 23;
    /** {@code IFLA_MASTER}. */
    public static final int IFLA_MASTER = 10;
    /** {@code IFLA_LINKINFO} (nested). */
    public static final int IFLA_LINKINFO = 18;
    /** {@code IFLA_NET_NS_FD}. */
    public static final int IFLA_NET_NS_FD = 28;
    /** {@code IFLA_INFO_KIND}, inside IFLA_LINKINFO. */
    public static final int IFLA_INFO_KIND = 1;
    /** {@code IFLA_INFO_DATA}, inside IFLA_LINKINFO (nested). */
    public static final int IFLA_INFO_DATA = 2;

    // <linux/if_link.h>: IFLA_VXLAN_*, inside IFLA_INFO_DATA of a vxlan link
    /** {@code IFLA_VXLAN_ID}: u32 VNI. */
    public static final int IFLA_VXLAN_ID = 1;
    /** {@code IFLA_VXLAN_GROUP}: IPv4 multicast group or unicast remote. */
    public static final int IFLA_VXLAN_GROUP = 2;
    /** {@code IFLA_VXLAN_LINK}: u32 index of the underlay device. */
    public static final int IFLA_VXLAN_LINK = 3;
    /** {@code IFLA_VXLAN_LOCAL}: IPv4 source address. */
    public static final int IFLA_VXLAN_LOCAL = 4;
    /** {@code IFLA_VXLAN_TTL}: u8, 0 = auto. */
    public static final int IFLA_VXLAN_TTL = 5;
    /** {@code IFLA_VXLAN_TOS}: u8. */
    public static final int IFLA_VXLAN_TOS = 6;
    /** {@code IFLA_VXLAN_LEARNING}: u8 bool. */
    public static final int IFLA_VXLAN_LEARNING = 7;
    /** {@code IFLA_VXLAN_PROXY}: u8 bool. */
    public static final int IFLA_VXLAN_PROXY = 11;
    /** {@code IFLA_VXLAN_RSC}: u8 bool. */
    public static final int IFLA_VXLAN_RSC = 12;
    /** {@code IFLA_VXLAN_L2MISS}: u8 bool. */
    public static final int IFLA_VXLAN_L2MISS = 13;
    /** {@code IFLA_VXLAN_L3MISS}: u8 bool. */
    public static final int IFLA_VXLAN_L3MISS = 14;
    /** {@code IFLA_VXLAN_PORT}: u16 destination port, network byte order. */
    public static final int IFLA_VXLAN_PORT = 15;
    /** {@code IFLA_VXLAN_UDP_ZERO_CSUM6_TX}: u8 bool. */
    public static final int IFLA_VXLAN_UDP_ZERO_CSUM6_TX = 19;
    /** {@code IFLA_VXLAN_UDP_ZERO_CSUM6_RX}: u8 bool. */
    public static final int IFLA_VXLAN_UDP_ZERO_CSUM6_RX = 20;
    /** {@code IFLA_VXLAN_GBP}: a flag (no payload), present when Group Based Policy is on. */
    public static final int IFLA_VXLAN_GBP = 23;

    // <linux/veth.h>
    /** {@code VETH_INFO_PEER}: an ifinfomsg followed by the peer's attributes. */
    public static final int VETH_INFO_PEER = 1;

    // <linux/if.h>
    /** {@code IFF_UP}. */
    public static final int IFF_UP = 0x1;

    /** {@code sizeof(struct ifinfomsg)}. */
    public static final int IFINFOMSG_SIZE = 16;
    /** {@code sizeof(struct ifaddrmsg)}. */
    public static final int IFADDRMSG_SIZE = 8;
    /** {@code sizeof(struct rtmsg)}. */
    public static final int RTMSG_SIZE = 12;
    /** {@code sizeof(struct ndmsg)}. */
    public static final int NDMSG_SIZE = 12;
}
