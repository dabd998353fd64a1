package io.overlay4j.vxlan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.udp.VxlanLeaseData;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** {@link VxlanBackend}'s options without a kernel: data plane names, the builder's checks, the derived VtepMAC. */
class VxlanBackendTest {

    @Test
    void dataPlanesAreNamedAsTheFlagTakesThem() {
        assertEquals(VxlanBackend.DataPlane.KERNEL, VxlanBackend.DataPlane.parse("kernel"));
        assertEquals(VxlanBackend.DataPlane.USERSPACE, VxlanBackend.DataPlane.parse("Userspace"));
        assertEquals(VxlanBackend.DataPlane.AUTO, VxlanBackend.DataPlane.parse("AUTO"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> VxlanBackend.DataPlane.parse("tun"));
        assertEquals("unknown vxlan data plane 'tun' (kernel, userspace, auto)", e.getMessage());
        assertEquals(VxlanBackend.DataPlane.KERNEL, VxlanBackend.builder().build().options.dataPlane(),
                "the kernel's by default");
        assertTrue(VxlanBackend.builder().build().activeDataPlane().isEmpty());
    }

    @Test
    void builderChecksUserspaceOptions() {
        assertEquals("0a:58:64:60:01:00", VxlanBackend.builder().vtepMac("0A-58-64-60-01-00").build().options
                .vtepMac());
        assertThrows(IllegalArgumentException.class, () -> VxlanBackend.builder().vtepMac("01:00:5e:00:00:01"));
        assertThrows(IllegalArgumentException.class, () -> VxlanBackend.builder().vtepMac("00:00:00:00:00:00"));
        assertThrows(IllegalArgumentException.class, () -> VxlanBackend.builder().vtepMac("0a:58"));
        assertThrows(IllegalArgumentException.class, () -> VxlanBackend.builder().tunName("flannel%d"));
        assertThrows(IllegalArgumentException.class, () -> VxlanBackend.builder().tunName("a-name-too-long-16"));
        assertEquals("vx0", VxlanBackend.builder().tunName("vx0").build().options.tunName());
        assertTrue(VxlanBackend.builder().build().options.offloads(), "offloads on by default, as udp's");
    }

    @Test
    void theDerivedVtepMacIsStableLocalUnicastAndPerAddressAndVni() {
        String mac = UserspaceVxlanNetwork.derivedMac(1, Ipv4Prefix.parseAddress("10.168.0.3"));
        assertEquals(mac, UserspaceVxlanNetwork.derivedMac(1, Ipv4Prefix.parseAddress("10.168.0.3")));
        assertEquals(0x02, Integer.parseInt(mac.substring(0, 2), 16) & 0x03, mac);
        assertTrue(new VxlanLeaseData(1, mac).unicastMac());
        assertNotEquals(mac, UserspaceVxlanNetwork.derivedMac(2, Ipv4Prefix.parseAddress("10.168.0.3")));
        Set<String> macs = new HashSet<>();
        for (int i = 0; i < 4096; i++) {
            String address = "10.0." + (i >> 8) + "." + (i & 255);
            macs.add(UserspaceVxlanNetwork.derivedMac(1, Ipv4Prefix.parseAddress(address)));
        }
        assertEquals(4096, macs.size(), "one MAC per address");
    }
}
