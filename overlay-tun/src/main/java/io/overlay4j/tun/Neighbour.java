package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

import java.net.Inet4Address;

/**
 * An IPv4 neighbour (ARP) entry, as {@code ip neigh} lists it.
 *
 * @param address the neighbour's IPv4 address
 * @param mac     its link-layer address in lower-case colon form, or empty when unresolved
 * @param device  the device name
 * @param index   the device's interface index
 * @param state   the {@code NUD_*} state bits, e.g. {@link #NUD_PERMANENT}
 */
public record Neighbour(Inet4Address address, String mac, String device, int index, int state) {
    /** {@code NUD_INCOMPLETE} from {@code <linux/neighbour.h>}. */
    public static final int NUD_INCOMPLETE = 0x01;
    /** {@code NUD_REACHABLE}. */
    public static final int NUD_REACHABLE = 0x02;
    /** {@code NUD_STALE}. */
    public static final int NUD_STALE = 0x04;
    /** {@code NUD_DELAY}. */
    public static final int NUD_DELAY = 0x08;
    /** {@code NUD_PROBE}. */
    public static final int NUD_PROBE = 0x10;
    /** {@code NUD_FAILED}. */
    public static final int NUD_FAILED = 0x20;
    /** {@code NUD_NOARP}. */
    public static final int NUD_NOARP = 0x40;
    /** {@code NUD_PERMANENT}: a static entry, never aged out. */
    public static final int NUD_PERMANENT = 0x80;

    private static final String[] STATE_NAMES = {"INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED",
        "NOARP", "PERMANENT"};

    public Neighbour {
        requireNonNull(address, "address");
        requireNonNull(mac, "mac");
        requireNonNull(device, "device");
    }

    /** Whether the entry is permanent ({@code nud permanent}). */
    public boolean isPermanent() {
        return (state & NUD_PERMANENT) != 0;
    }

    /** {@code ip neigh}'s form, e.g. {@code 100.96.2.0 dev flannel.1 lladdr 0a:11:22:33:44:55 PERMANENT}. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(address.getHostAddress()).append(" dev ").append(device);
        if (!mac.isEmpty()) {
            sb.append(" lladdr ").append(mac);
        }
        sb.append(' ').append(stateName(state));
        return sb.toString();
    }

    /** The state as {@code ip neigh} prints it: {@code PERMANENT}, {@code REACHABLE}, ... or {@code NONE}. */
    public static String stateName(int state) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < STATE_NAMES.length; i++) {
            if ((state & (1 << i)) != 0) {
                if (sb.length() > 0) {
                    sb.append(' ');
                }
                sb.append(STATE_NAMES[i]);
            }
        }
        return sb.length() == 0 ? "NONE" : sb.toString();
    }
}
