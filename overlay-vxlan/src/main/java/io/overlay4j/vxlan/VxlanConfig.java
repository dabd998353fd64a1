package io.overlay4j.vxlan;

import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.internal.Json;
import io.overlay4j.tun.VxlanLink;
import java.util.Map;

/**
 * The {@code Backend} section of a vxlan network's config, read as flannel's {@code parseVXLANConfig} reads it (keys
 * matched case-insensitively, unknown keys ignored, {@code null} values leaving the default), with the range checks
 * flannel leaves to the kernel (or skips) done up front:
 *
 * <pre>{@code
 * {"Network":"100.96.0.0/16","Backend":{"Type":"vxlan","VNI":1,"Port":0,"MTU":1500,"GBP":false,"Learning":false,
 *                                       "DirectRouting":false}}
 * }</pre>
 *
 * @param vni           the VXLAN network identifier, default 1; the device is {@code flannel.<vni>}
 * @param port          the UDP port, default 0: the kernel's default, 8472
 * @param mtu           the MTU the device's is derived from ({@code MTU - 50}); 0 (the default) means the underlay
 *                      interface's MTU
 * @param gbp           whether the VXLAN Group Based Policy extension is on, default false
 * @param learning      whether the device learns remote MACs, default false
 * @param directRouting whether peers on the same L2 network are routed directly, without VXLAN; default false
 */
public record VxlanConfig(int vni, int port, int mtu, boolean gbp, boolean learning, boolean directRouting) {
    /** flannel's default VNI. */
    public static final int DEFAULT_VNI = 1;
    /** The kernel's VXLAN port when none is configured (Linux's historic default, not IANA's 4789). */
    public static final int KERNEL_DEFAULT_PORT = 8472;
    /** flannel's {@code encapOverhead}: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 bytes. */
    public static final int OVERHEAD = 50;
    /** The smallest {@code MTU} that leaves the device the minimum IPv4 MTU (68). */
    public static final int MIN_MTU = 68 + OVERHEAD;

    private static final String PREFIX = "error decoding VXLAN backend config: ";

    public VxlanConfig {
        if (vni < 0 || vni > VxlanLink.MAX_VNI) {
            throw invalid("VNI must be 0.." + VxlanLink.MAX_VNI + ": " + vni);
        }
        if (port < 0 || port > 65535) {
            throw invalid("Port must be 0..65535 (0: the kernel's default, 8472): " + port);
        }
        if (mtu != 0 && mtu < MIN_MTU) {
            throw invalid("MTU must be at least " + MIN_MTU + " (the device gets MTU - " + OVERHEAD + "): " + mtu);
        }
    }

    /** The defaults: VNI 1, port 0 (8472), the underlay's MTU, no GBP, no learning, no direct routing. */
    public static VxlanConfig defaults() {
        return new VxlanConfig(DEFAULT_VNI, 0, 0, false, false, false);
    }

    /**
     * Reads the vxlan options of a network config.
     *
     * @throws OverlayException {@code CONFIG_INVALID} naming the field, e.g. {@code error decoding VXLAN backend
     *                          config: json: cannot unmarshal string into Go struct field VXLANConfig.port of type int}
     */
    public static VxlanConfig of(NetworkConfig config) {
        return parse(config.backendJson());
    }

    /**
     * Reads a {@code Backend} JSON object; {@code null} gives the defaults.
     *
     * @throws OverlayException {@code CONFIG_INVALID} naming the field
     */
    public static VxlanConfig parse(String backendJson) {
        if (backendJson == null) {
            return defaults();
        }
        Object parsed;
        try {
            parsed = Json.parse(backendJson);
        } catch (IllegalArgumentException e) {
            throw invalid(e.getMessage());
        }
        if (parsed == null) {
            return defaults();
        }
        if (!(parsed instanceof Map)) {
            throw invalid("json: cannot unmarshal " + Json.typeName(parsed)
                    + " into Go value of type vxlan.VXLANConfig");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> b = (Map<String, Object>) parsed;
        return new VxlanConfig(
                integer(b, "vni", DEFAULT_VNI),
                integer(b, "port", 0),
                integer(b, "mtu", 0),
                bool(b, "gbp", false),
                bool(b, "learning", false),
                bool(b, "directRouting", false));
    }

    /** The device name: {@code flannel.<vni>}. */
    public String deviceName() {
        return "flannel." + vni;
    }

    /** The port packets go to: {@link #port()}, or 8472 when it is 0. */
    public int effectivePort() {
        return port > 0 ? port : KERNEL_DEFAULT_PORT;
    }

    /** The MTU flannel derives the device's from: the configured one, else the underlay interface's. */
    public int baseMtu(int interfaceMtu) {
        return mtu > 0 ? mtu : interfaceMtu;
    }

    /** The device's MTU, which is also {@code FLANNEL_MTU}: {@link #baseMtu} − 50. */
    public int deviceMtu(int interfaceMtu) {
        return baseMtu(interfaceMtu) - OVERHEAD;
    }

    private static int integer(Map<String, Object> b, String field, int defaultValue) {
        Object v = Json.get(b, field);
        if (v == null) {
            return defaultValue;
        }
        if (!(v instanceof Long) || (Long) v < Integer.MIN_VALUE || (Long) v > Integer.MAX_VALUE) {
            String what = v instanceof Number ? "number " + Json.write(v) : Json.typeName(v);
            throw invalid("json: cannot unmarshal " + what + " into Go struct field VXLANConfig." + field
                    + " of type int");
        }
        return ((Long) v).intValue();
    }

    private static boolean bool(Map<String, Object> b, String field, boolean defaultValue) {
        Object v = Json.get(b, field);
        if (v == null) {
            return defaultValue;
        }
        if (!(v instanceof Boolean)) {
            String what = v instanceof Number ? "number" : Json.typeName(v);
            throw invalid("json: cannot unmarshal " + what + " into Go struct field VXLANConfig." + field
                    + " of type bool");
        }
        return (Boolean) v;
    }

    private static OverlayException invalid(String why) {
        return new OverlayException(OverlayException.Kind.CONFIG_INVALID, PREFIX + why);
    }
}
