package io.overlay4j.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import org.junit.jupiter.api.Test;

class LeaseJsonTest {
    private static final String UDP = "{\"PublicIP\":\"10.168.0.2\",\"PublicIPv6\":null}";
    private static final String HOST_GW = "{\"PublicIP\":\"192.168.1.10\",\"PublicIPv6\":null,\"BackendType\":"
            + "\"host-gw\"}";
    private static final String VXLAN = "{\"PublicIP\":\"192.168.64.3\",\"PublicIPv6\":null,\"BackendType\":"
            + "\"vxlan\",\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}}";

    @Test
    void writesFlannelBytes() {
        assertEquals(UDP, LeaseAttributes.udp(Ipv4Prefix.parseAddress("10.168.0.2")).toJson());
        assertEquals(HOST_GW,
                new LeaseAttributes(Ipv4Prefix.parseAddress("192.168.1.10"), null, "host-gw", null).toJson());
        assertEquals(VXLAN, new LeaseAttributes(Ipv4Prefix.parseAddress("192.168.64.3"), null, "vxlan",
                "{ \"VNI\": 1,\n \"VtepMAC\": \"c6:d2:32:6f:8f:44\" }").toJson());
        assertEquals("{\"PublicIP\":\"192.168.64.3\",\"PublicIPv6\":\"2001:db8::10\"}",
                new LeaseAttributes(Ipv4Prefix.parseAddress("192.168.64.3"), "2001:db8::10", "", "").toJson());
    }

    @Test
    void roundTripsByteExact() {
        for (String json : new String[] {UDP, HOST_GW, VXLAN}) {
            assertEquals(json, LeaseAttributes.parse(json).toJson());
        }
    }

    @Test
    void readsCaseInsensitivelyIgnoringUnknownKeys() {
        LeaseAttributes a = LeaseAttributes.parse("{\"publicip\":\"10.1.2.3\",\"backendtype\":\"vxlan\",\"Extra\":"
                + "[1],\"backenddata\":{\"VNI\" : 7},\"BackendV6Data\":{\"VNI\":7},\"publicipv6\":\"2001:DB8:0::1\"}");
        assertEquals("10.1.2.3", a.publicIp().getHostAddress());
        assertEquals("2001:db8::1", a.publicIpv6());
        assertEquals("vxlan", a.backendType());
        assertEquals("{\"VNI\":7}", a.backendData());
    }

    @Test
    void olderWritersAndMissingFields() {
        LeaseAttributes a = LeaseAttributes.parse("{\"PublicIP\":\"10.1.2.3\"}");
        assertNull(a.publicIpv6());
        assertNull(a.backendType());
        assertNull(a.backendData());
        assertEquals("0.0.0.0", LeaseAttributes.parse("{}").publicIp().getHostAddress());
    }

    @Test
    void rejectsBadValuesAsStoreCorrupt() {
        for (String bad : new String[] {"{\"PublicIP\":\"\"}", "{\"PublicIP\":null}", "{\"PublicIP\":\"fe80::1\"}",
            "{\"PublicIP\":\"10.1.2\"}", "{\"PublicIP\":7}", "[]", "{", "", "{\"PublicIP\":\"10.1.2.3\","
                + "\"PublicIPv6\":\"10.1.2.3\"}", "{\"PublicIP\":\"10.1.2.3\",\"BackendType\":1}"}) {
            OverlayException e = assertThrows(OverlayException.class, () -> LeaseAttributes.parse(bad), bad);
            assertEquals(OverlayException.Kind.STORE_CORRUPT, e.kind());
            assertTrue(e.getMessage().startsWith("invalid lease value ("), e.getMessage());
        }
    }

    @Test
    void invalidBackendDataCannotBeWritten() {
        LeaseAttributes a = new LeaseAttributes(Ipv4Prefix.parseAddress("10.1.2.3"), null, "vxlan", "{oops");
        assertEquals(OverlayException.Kind.ILLEGAL_ARGUMENT, assertThrows(OverlayException.class, a::toJson).kind());
    }
}
