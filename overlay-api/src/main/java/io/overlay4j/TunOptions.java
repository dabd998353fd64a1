package io.overlay4j;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * How to open a {@link TunDevice}.
 *
 * @param name     the device name or a template with {@code %d} for the kernel to number, default {@code flannel%d}
 * @param mtu      the device MTU, default 1472 (a 1500-byte underlay minus flannel udp's 28 bytes)
 * @param offloads whether to ask for a device with virtio-net headers and TCP/UDP segmentation offloads
 *                 ({@code IFF_VNET_HDR}, {@code TUNSETOFFLOAD}), default {@code false}. <strong>This changes the
 *                 I/O contract:</strong> when the device grants it, every read returns a 10-byte
 *                 {@code virtio_net_hdr} followed by a packet of up to 64 KiB (possibly a TCP super-packet larger than
 *                 the MTU, possibly with a partial checksum), and every write must start with such a header. Devices
 *                 that cannot (an old kernel) fall back to plain packets; ask the device what it got (for the Linux
 *                 device, {@code LinuxTunDevice.vnetHeader()}).
 */
public record TunOptions(String name, int mtu, boolean offloads) {

    /** The default name template, as flannel's. */
    public static final String DEFAULT_NAME = "flannel%d";

    public TunOptions {
        checkArgument(name != null && !name.isEmpty() && name.length() < 16,
                "TUN name must be 1..15 characters: %s", name);
        checkArgument(mtu >= 68 && mtu <= 65535, "TUN MTU must be 68..65535: %s", mtu);
    }

    /** Options without offloads: plain IP packets, one per read and write. */
    public TunOptions(String name, int mtu) {
        this(name, mtu, false);
    }

    /** The defaults: {@code flannel%d}, MTU 1472, no offloads. */
    public static TunOptions defaults() {
        return new TunOptions(DEFAULT_NAME, 1472, false);
    }

    /** A copy with another name. */
    public TunOptions withName(String name) {
        return new TunOptions(name, mtu, offloads);
    }

    /** A copy with another MTU. */
    public TunOptions withMtu(int mtu) {
        return new TunOptions(name, mtu, offloads);
    }

    /** A copy that asks for virtio-net headers and offloads, or not (see {@link #offloads()}). */
    public TunOptions withOffloads(boolean offloads) {
        return new TunOptions(name, mtu, offloads);
    }
}
