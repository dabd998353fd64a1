package io.overlay4j.udp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.LeaseAttributes;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * A vxlan lease's bytes as flanneld writes them, and how a peer's BackendData is read (by the kernel vxlan backend and
 * the userspace encapsulator alike).
 */
class VxlanLeaseDataTest {

    @Test
    void leaseJsonIsFlannelsByteForByte() {
        // Documentation/reservations.md and flannel-facts §2.2: the value a flanneld vxlan node writes
        String flannel = "{\"PublicIP\":\"192.168.64.3\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\","
                + "\"BackendData\":{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}}";
        LeaseAttributes a = new LeaseAttributes(Ipv4Prefix.parseAddress("192.168.64.3"), null, "vxlan",
                new VxlanLeaseData(1, "c6:d2:32:6f:8f:44").toJson());
        assertEquals(flannel, a.toJson());
        assertEquals(a, LeaseAttributes.parse(flannel));
        assertEquals(new VxlanLeaseData(1, "c6:d2:32:6f:8f:44"), VxlanLeaseData.parse(a.backendData()));
        assertEquals("{\"VNI\":16777215,\"VtepMAC\":\"0a:00:00:00:00:01\"}",
                new VxlanLeaseData(16777215, "0A:00:00:00:00:01").toJson());
    }

    @Test
    void peersDataIsReadAsGoDoes() {
        assertEquals(new VxlanLeaseData(7, "0a:58:64:60:01:00"),
                VxlanLeaseData.parse("{\"vni\":7,\"vtepmac\":\"0A:58:64:60:01:00\",\"Extra\":true}"));
        assertEquals("0a:58:64:60:01:00", VxlanLeaseData.parse("{\"VNI\":1,\"VtepMAC\":\"0a-58-64-60-01-00\"}")
                .vtepMac());
        assertEquals("0a:58:64:60:01:00", VxlanLeaseData.parse("{\"VNI\":1,\"VtepMAC\":\"0a58.6460.0100\"}")
                .vtepMac());
        assertEquals(4294967295L, VxlanLeaseData.parse("{\"VNI\":4294967295,\"VtepMAC\":\"0a:58:64:60:01:00\"}")
                .vni(), "a uint32 in the lease, as flannel's");
    }

    @Test
    void malformedDataSaysWhat() {
        assertEquals("BackendData has no VNI", malformed("{\"VtepMAC\":\"0a:58:64:60:01:00\"}"));
        assertEquals("BackendData has no VNI", malformed("{\"VNI\":null,\"VtepMAC\":\"0a:58:64:60:01:00\"}"));
        assertEquals("BackendData has no VtepMAC", malformed("{\"VNI\":1}"));
        assertEquals("not a 6-byte MAC address: \"zz:58:64:60:01:00\"",
                malformed("{\"VNI\":1,\"VtepMAC\":\"zz:58:64:60:01:00\"}"));
        assertEquals("not a 6-byte MAC address: \"0a:58:64:60:01\"",
                malformed("{\"VNI\":1,\"VtepMAC\":\"0a:58:64:60:01\"}"));
        assertEquals("not a 6-byte MAC address: \"02:00:5e:10:00:00:00:01\"",
                malformed("{\"VNI\":1,\"VtepMAC\":\"02:00:5e:10:00:00:00:01\"}"));
        assertEquals("not a 6-byte MAC address: \"0a:58-64:60:01:00\"",
                malformed("{\"VNI\":1,\"VtepMAC\":\"0a:58-64:60:01:00\"}"));
        assertEquals("BackendData VtepMAC is not a string: 5", malformed("{\"VNI\":1,\"VtepMAC\":5}"));
        assertEquals("BackendData VNI is not a uint32: -1",
                malformed("{\"VNI\":-1,\"VtepMAC\":\"0a:58:64:60:01:00\"}"));
        assertEquals("BackendData VNI is not a uint32: \"1\"",
                malformed("{\"VNI\":\"1\",\"VtepMAC\":\"0a:58:64:60:01:00\"}"));
        assertEquals("BackendData is not an object: null", malformed("null"));
        assertEquals("BackendData is not an object: [1]", malformed("[1]"));
        assertEquals("no BackendData", malformed(null));
        assertTrue(malformed("{").startsWith("BackendData is not JSON"));
    }

    @Test
    void unicastMacs() {
        assertTrue(new VxlanLeaseData(1, "02:00:00:00:00:01").unicastMac());
        assertFalse(new VxlanLeaseData(1, "01:00:5e:00:00:01").unicastMac(), "multicast");
        assertFalse(new VxlanLeaseData(1, "ff:ff:ff:ff:ff:ff").unicastMac(), "broadcast");
        assertFalse(new VxlanLeaseData(1, "00:00:00:00:00:00").unicastMac(), "all zeros");
        assertArrayEquals(new byte[] {0x0a, 0x58, 0x64, 0x60, 0x01, (byte) 0xff},
                new VxlanLeaseData(1, "0A-58-64-60-01-FF").vtepMacBytes());
    }

    private static String malformed(String data) {
        return assertThrows(IllegalArgumentException.class, () -> VxlanLeaseData.parse(data)).getMessage();
    }

    @Test
    void randomMacsAreLocallyAdministeredUnicast() {
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < 200; i++) {
            String mac = VxlanLeaseData.randomMac();
            assertTrue(mac.matches("([0-9a-f]{2}:){5}[0-9a-f]{2}"), mac);
            int first = Integer.parseInt(mac.substring(0, 2), 16);
            assertEquals(0x02, first & 0x03, mac + ": local bit set, multicast bit clear");
            seen.add(mac);
        }
        assertTrue(seen.size() > 190, "random: " + seen.size());
        assertNotEquals(VxlanLeaseData.randomMac(), VxlanLeaseData.randomMac());
    }
}
