package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

/**
 * A network device as rtnetlink lists it ({@code ip -d link}).
 *
 * @param index  the interface index
 * @param name   the device name, e.g. {@code eth0}
 * @param flags  the {@code IFF_*} flags ({@code IFF_UP} = 0x1, {@code IFF_LOOPBACK} = 0x8)
 * @param mtu    the MTU
 * @param kind   the link kind from {@code IFLA_INFO_KIND} ({@code veth}, {@code bridge}, {@code vxlan}, {@code tun}),
 *               or empty for devices without one (physical NICs, loopback)
 * @param mac    the hardware address in lower-case colon form ({@code 0a:58:64:60:01:01}), or empty if none
 * @param master the index of the device this one is enslaved to (a bridge), or 0
 */
public record Link(int index, String name, int flags, int mtu, String kind, String mac, int master) {
    /** {@code IFF_UP}. */
    public static final int IFF_UP = 0x1;
    /** {@code IFF_LOOPBACK}. */
    public static final int IFF_LOOPBACK = 0x8;

    public Link {
        requireNonNull(name, "name");
        requireNonNull(kind, "kind");
        requireNonNull(mac, "mac");
    }

    /** Whether the device is administratively up. */
    public boolean isUp() {
        return (flags & IFF_UP) != 0;
    }

    /** Whether it is a loopback device. */
    public boolean isLoopback() {
        return (flags & IFF_LOOPBACK) != 0;
    }
}
