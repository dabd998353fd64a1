package io.overlay4j.internal;

import com.google.common.net.InetAddresses;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.util.Map;

/**
 * Reads and writes flannel's lease JSON ({@code LeaseAttrs}, flannel-facts §2.2) byte for byte:
 * {@code {"PublicIP":"10.168.0.2","PublicIPv6":null}} for udp, with {@code "BackendType"} and the compacted raw
 * {@code "BackendData"} appended when present. {@code BackendV6Data} is read past and not kept.
 */
public final class LeaseJson {
    private LeaseJson() {
    }

    /** flannel's compact JSON for the attributes. */
    public static String write(LeaseAttributes a) {
        StringBuilder sb = new StringBuilder(96).append("{\"PublicIP\":");
        Json.writeString(sb, a.publicIp().getHostAddress());
        sb.append(",\"PublicIPv6\":");
        if (a.publicIpv6() == null) {
            sb.append("null");
        } else {
            Json.writeString(sb, a.publicIpv6());
        }
        if (a.backendType() != null) {
            sb.append(",\"BackendType\":");
            Json.writeString(sb, a.backendType());
        }
        if (a.backendData() != null) {
            sb.append(",\"BackendData\":");
            try {
                sb.append(Json.compact(a.backendData())); // Go compacts a json.RawMessage when marshalling
            } catch (IllegalArgumentException e) {
                throw new OverlayException(Kind.ILLEGAL_ARGUMENT, "BackendData is not valid JSON: " + e.getMessage(), e);
            }
        }
        return sb.append('}').toString();
    }

    /**
     * Parses flannel's lease JSON: keys case-insensitive, unknown keys ignored, a missing {@code PublicIP} reads as
     * {@code 0.0.0.0}.
     *
     * @throws OverlayException {@code STORE_CORRUPT} if the value is not a valid lease
     */
    public static LeaseAttributes read(String json) {
        Map<String, Object> obj;
        try {
            obj = Json.parseObject(json);
        } catch (IllegalArgumentException e) {
            throw corrupt(e.getMessage(), json);
        }
        Inet4Address publicIp = Ipv4Prefix.fromInt(0);
        String key = Json.findKey(obj, "PublicIP");
        if (key != null) {
            Object v = obj.get(key);
            // flannel's IP4.UnmarshalJSON trims the quotes off whatever it gets, so null and "" are both errors.
            String text = v instanceof String ? (String) v : Json.write(v);
            try {
                publicIp = Ipv4Prefix.parseAddress(text);
            } catch (IllegalArgumentException e) {
                throw corrupt("PublicIP is not an IPv4 address: " + Json.write(v), json);
            }
        }
        String publicIpv6 = null;
        Object v6 = Json.get(obj, "PublicIPv6");
        if (v6 != null) {
            InetAddress a = null;
            if (v6 instanceof String) {
                try {
                    a = InetAddresses.forString((String) v6);
                } catch (IllegalArgumentException e) {
                    a = null;
                }
            }
            if (!(a instanceof Inet6Address)) {
                throw corrupt("PublicIPv6 is not an IPv6 address: " + Json.write(v6), json);
            }
            publicIpv6 = InetAddresses.toAddrString(a);
        }
        Object type = Json.get(obj, "BackendType");
        if (type != null && !(type instanceof String)) {
            throw corrupt("BackendType is not a string: " + Json.write(type), json);
        }
        String data = null;
        key = Json.findKey(obj, "BackendData");
        if (key != null) {
            data = Json.write(obj.get(key)); // a json.RawMessage keeps even a literal null
        }
        return new LeaseAttributes(publicIp, publicIpv6, (String) type, data);
    }

    private static OverlayException corrupt(String why, String json) {
        String shown = json.length() > 200 ? json.substring(0, 200) + "..." : json;
        return new OverlayException(Kind.STORE_CORRUPT, "invalid lease value (" + why + "): " + shown);
    }
}
