package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

import java.net.Inet4Address;

/**
 * A forwarding-database entry of a device ({@code bridge fdb}); for a vxlan device, where to send frames for a MAC:
 * the remote VTEP's address.
 *
 * @param mac         the link-layer address, lower-case colon form
 * @param device      the device name
 * @param index       the device's interface index
 * @param destination the remote VTEP ({@code dst}), or {@code null} for an entry without one
 * @param state       the {@code NUD_*} state, e.g. {@link Neighbour#NUD_PERMANENT}
 * @param flags       the {@code NTF_*} flags, e.g. {@link #NTF_SELF}
 */
public record FdbEntry(String mac, String device, int index, Inet4Address destination, int state, int flags) {
    /** {@code NTF_SELF} from {@code <linux/neighbour.h>}: the entry is in the device's own table. */
    public static final int NTF_SELF = 0x02;
    /** {@code NTF_MASTER}: the entry is in the device's master's (a bridge's) table. */
    public static final int NTF_MASTER = 0x04;

    public FdbEntry {
        requireNonNull(mac, "mac");
        requireNonNull(device, "device");
    }

    /** Whether the entry is in the device's own table ({@code self}). */
    public boolean isSelf() {
        return (flags & NTF_SELF) != 0;
    }

    /** Whether the entry is permanent. */
    public boolean isPermanent() {
        return (state & Neighbour.NUD_PERMANENT) != 0;
    }

    /** {@code bridge fdb}'s form, e.g. {@code 0a:11:22:33:44:55 dev flannel.1 dst 10.168.0.3 self permanent}. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(mac).append(" dev ").append(device);
        if (destination != null) {
            sb.append(" dst ").append(destination.getHostAddress());
        }
        if (isSelf()) {
            sb.append(" self");
        }
        if ((flags & NTF_MASTER) != 0) {
            sb.append(" master");
        }
        if (isPermanent()) {
            sb.append(" permanent");
        } else if ((state & Neighbour.NUD_NOARP) != 0) {
            sb.append(" static");
        } else if ((state & Neighbour.NUD_STALE) != 0) {
            sb.append(" stale");
        }
        return sb.toString();
    }
}
