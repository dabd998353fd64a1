package io.overlay4j;

import static com.google.common.base.Preconditions.checkArgument;

/**
 * How to open a {@link TunDevice}.
 *
 * @param name the device name or a template with {@code %d} for the kernel to number, default {@code flannel%d}
 * @param mtu  the device MTU, default 1472 (a 1500-byte underlay minus flannel udp's 28 bytes)
 */
public record TunOptions(String name, int mtu) {

    /** The default name template, as flannel's. */
    public static final String DEFAULT_NAME = "flannel%d";

    public TunOptions {
        checkArgument(name != null && !name.isEmpty() && name.length() < 16,
                "TUN name must be 1..15 characters: %s", name);
        checkArgument(mtu >= 68 && mtu <= 65535, "TUN MTU must be 68..65535: %s", mtu);
    }

    /** The defaults: {@code flannel%d}, MTU 1472. */
    public static TunOptions defaults() {
        return new TunOptions(DEFAULT_NAME, 1472);
    }

    /** A copy with another name. */
    public TunOptions withName(String name) {
        return new TunOptions(name, mtu);
    }

    /** A copy with another MTU. */
    public TunOptions withMtu(int mtu) {
        return new TunOptions(name, mtu);
    }
}
