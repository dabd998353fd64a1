package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.internal.Json;
import io.overlay4j.tun.VxlanLink;
import java.security.SecureRandom;
import java.util.Map;

/**
 * A vxlan lease's {@code BackendData}: flannel's {@code vxlanLeaseAttrs}, written {@code {"VNI":1,"VtepMAC":"..."}}
 * byte for byte as flanneld writes it (fields in that order, compact, the MAC in lower-case colon form). The one
 * reader of that format: the kernel vxlan backend ({@code overlay-vxlan}) and the userspace {@link VxlanEncapsulator}
 * both parse peers' leases with {@link #parse}, so they accept and refuse exactly the same leases (the data plane
 * additionally needs a unicast MAC, {@link #unicastMac()}, and its own VNI).
 *
 * @param vni     the VNI the node's device uses
 * @param vtepMac the MAC of the node's VTEP ({@code flannel.<VNI>}), lower-case colon form
 */
public record VxlanLeaseData(long vni, String vtepMac) {
    private static final SecureRandom RANDOM = new SecureRandom();

    public VxlanLeaseData {
        if (vni < 0 || vni > 0xffff_ffffL) {
            throw new IllegalArgumentException("VNI must be a uint32: " + vni);
        }
        vtepMac = normalizeMac(requireNonNull(vtepMac, "vtepMac"));
    }

    /** flannel's JSON: {@code {"VNI":1,"VtepMAC":"0a:58:64:60:01:00"}}. */
    public String toJson() {
        return "{\"VNI\":" + vni + ",\"VtepMAC\":\"" + vtepMac + "\"}";
    }

    /**
     * Reads a peer's {@code BackendData} as flannel's decoder does (keys case-insensitive, unknown keys ignored, the
     * MAC in any form Go's {@code net.ParseMAC} takes for 6 bytes), but stricter where flannel would program garbage:
     * a missing or {@code null} {@code VNI} or {@code VtepMAC}, or a value that is not an object, is malformed too.
     *
     * @throws IllegalArgumentException saying what is wrong
     */
    public static VxlanLeaseData parse(String backendData) {
        if (backendData == null) {
            throw new IllegalArgumentException("no BackendData");
        }
        Object parsed;
        try {
            parsed = Json.parse(backendData);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("BackendData is not JSON: " + e.getMessage());
        }
        if (!(parsed instanceof Map)) {
            throw new IllegalArgumentException("BackendData is not an object: " + backendData);
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) parsed;
        Object vni = Json.get(m, "VNI");
        if (vni == null) {
            throw new IllegalArgumentException("BackendData has no VNI");
        }
        if (!(vni instanceof Long) || (Long) vni < 0 || (Long) vni > 0xffff_ffffL) {
            throw new IllegalArgumentException("BackendData VNI is not a uint32: " + Json.write(vni));
        }
        Object mac = Json.get(m, "VtepMAC");
        if (mac == null) {
            throw new IllegalArgumentException("BackendData has no VtepMAC");
        }
        if (!(mac instanceof String)) {
            throw new IllegalArgumentException("BackendData VtepMAC is not a string: " + Json.write(mac));
        }
        return new VxlanLeaseData((Long) vni, (String) mac);
    }

    /** Whether the VNI is one a kernel vxlan device (or the VXLAN header) can carry: 24 bits. */
    public boolean vniFitsDevice() {
        return vni <= VxlanLink.MAX_VNI;
    }

    /**
     * Whether the VtepMAC can address a VTEP: neither a multicast (or broadcast) address nor all zeros. flanneld
     * programs whatever a lease says; a kernel vxlan device then floods or drops such frames, so the userspace data
     * plane refuses such a lease instead.
     */
    public boolean unicastMac() {
        byte[] b = vtepMacBytes();
        boolean zero = true;
        for (byte x : b) {
            zero &= x == 0;
        }
        return (b[0] & 1) == 0 && !zero;
    }

    /** The VtepMAC's 6 bytes (a new array). */
    public byte[] vtepMacBytes() {
        return macBytes(vtepMac);
    }

    /**
     * A random locally administered unicast MAC, as flannel's {@code mac.NewHardwareAddr} makes for
     * {@code flannel.<VNI>}: 6 random bytes, the first with the multicast bit cleared and the local bit set.
     */
    public static String randomMac() {
        byte[] b = new byte[6];
        RANDOM.nextBytes(b);
        b[0] = (byte) ((b[0] & 0xfe) | 0x02);
        return format(b);
    }

    /**
     * A 6-byte MAC in lower-case colon form, from any form Go's {@code net.ParseMAC} reads as 6 bytes:
     * {@code 0A:58:64:60:01:00}, {@code 0a-58-64-60-01-00} or {@code 0a58.6460.0100}.
     *
     * @throws IllegalArgumentException for anything else (including EUI-64 and InfiniBand forms)
     */
    public static String normalizeMac(String mac) {
        byte[] b = new byte[6];
        if (mac.length() == 17 && (mac.charAt(2) == ':' || mac.charAt(2) == '-')) {
            char sep = mac.charAt(2);
            for (int i = 0; i < 6; i++) {
                if (i < 5 && mac.charAt(i * 3 + 2) != sep) {
                    throw notMac(mac);
                }
                b[i] = (byte) hexByte(mac, i * 3);
            }
        } else if (mac.length() == 14 && mac.charAt(4) == '.' && mac.charAt(9) == '.') {
            for (int i = 0; i < 6; i++) {
                int pos = (i / 2) * 5 + (i % 2) * 2;
                b[i] = (byte) hexByte(mac, pos);
            }
        } else {
            throw notMac(mac);
        }
        return format(b);
    }

    /** The 6 bytes of a MAC in any form {@link #normalizeMac} reads. */
    static byte[] macBytes(String mac) {
        String normal = normalizeMac(mac);
        byte[] b = new byte[6];
        for (int i = 0; i < 6; i++) {
            b[i] = (byte) hexByte(normal, i * 3);
        }
        return b;
    }

    private static int hexByte(String s, int pos) {
        int hi = Character.digit(s.charAt(pos), 16);
        int lo = Character.digit(s.charAt(pos + 1), 16);
        if (hi < 0 || lo < 0 || !isAsciiHex(s.charAt(pos)) || !isAsciiHex(s.charAt(pos + 1))) {
            throw notMac(s);
        }
        return hi << 4 | lo;
    }

    private static boolean isAsciiHex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }

    private static IllegalArgumentException notMac(String mac) {
        return new IllegalArgumentException("not a 6-byte MAC address: \"" + mac + "\"");
    }

    /** A 6-byte MAC in lower-case colon form. */
    static String format(byte[] b) {
        StringBuilder sb = new StringBuilder(17);
        for (int i = 0; i < b.length; i++) {
            if (i > 0) {
                sb.append(':');
            }
            sb.append(Character.forDigit((b[i] >> 4) & 0xf, 16)).append(Character.forDigit(b[i] & 0xf, 16));
        }
        return sb.toString();
    }
}
