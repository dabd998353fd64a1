package io.overlay4j.udp;

import static io.overlay4j.udp.testing.Packets.addr;
import static io.overlay4j.udp.testing.Packets.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.DropReason;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.udp.testing.Packets;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** {@link VxlanEncapsulator}: the bytes on the wire, what is accepted, and which leases it can use. */
class VxlanEncapsulatorTest {
    private static final VxlanEncapsulator VX = VxlanEncapsulator.of(1, "c6:d2:32:6f:8f:44");
    private static final Ipv4Prefix SUBNET = Ipv4Prefix.parse("100.96.2.0/24");

    private static Lease lease(String type, String data) {
        return new Lease(SUBNET, new LeaseAttributes(Ipv4Prefix.parseAddress("10.168.0.3"), null, type, data), null);
    }

    @Test
    void constants() {
        assertEquals(8472, VX.defaultPort());
        assertEquals(50, VX.overhead());
        assertEquals(22, VX.headroom());
        assertFalse(VX.fixedSourcePort());
        assertEquals("{\"VNI\":1,\"VtepMAC\":\"c6:d2:32:6f:8f:44\"}", VX.backendData());
        assertEquals("c6:d2:32:6f:8f:44", VxlanEncapsulator.of(1, "C6:D2:32:6F:8F:44").vtepMac());
    }

    @Test
    void encapsulateWritesTheVxlanAndEthernetHeadersForThePeer() {
        Object peer = VX.peerContext(lease("vxlan", "{\"VNI\":1,\"VtepMAC\":\"0a:58:64:60:02:01\"}"));
        byte[] inner = Packets.ipv4(addr(100, 96, 1, 2), addr(100, 96, 2, 3), 6, 64, 40);
        ByteBuffer b = ByteBuffer.allocate(22 + 40);
        b.put(22, inner).position(22);
        assertNull(VX.encapsulate(b, peer, 1450));
        assertEquals(0, b.position());
        assertEquals(62, b.limit());
        byte[] out = b.array();
        assertEquals("08000000 00000100 0a586460 0201c6d2 326f8f44 0800", hex(Arrays.copyOf(out, 22)));
        assertArrayEquals(inner, Arrays.copyOfRange(out, 22, 62), "the inner packet is untouched (no TTL change)");
    }

    @Test
    void decapsulateAcceptsExactlyWhatAKernelPeerSendsUs() {
        byte[] inner = Packets.ipv4(addr(100, 96, 2, 3), addr(100, 96, 1, 2), 6, 1, 40);
        ByteBuffer ok = datagram(0x08000000, 1 << 8, "c6:d2:32:6f:8f:44", 0x0800, inner);
        assertNull(VX.decapsulate(ok, 1450));
        assertEquals(22, ok.position());
        assertArrayEquals(inner, Arrays.copyOfRange(ok.array(), 22, 62));

        assertEquals(DropReason.RUNT, VX.decapsulate(ByteBuffer.allocate(21), 1450));
        assertEquals(DropReason.BAD_ENCAPSULATION, VX.decapsulate(datagram(0, 1 << 8, "c6:d2:32:6f:8f:44", 0x0800,
                inner), 1450), "no I flag");
        assertEquals(DropReason.BAD_ENCAPSULATION, VX.decapsulate(datagram(0x08800000, 1 << 8, "c6:d2:32:6f:8f:44",
                0x0800, inner), 1450), "a reserved flag (GBP) the kernel device would refuse");
        assertEquals(DropReason.BAD_ENCAPSULATION, VX.decapsulate(datagram(0x08000000, 2 << 8, "c6:d2:32:6f:8f:44",
                0x0800, inner), 1450), "another VNI");
        assertEquals(DropReason.BAD_ENCAPSULATION, VX.decapsulate(datagram(0x08000000, 1 << 8 | 1,
                "c6:d2:32:6f:8f:44", 0x0800, inner), 1450), "the reserved byte after the VNI");
        assertEquals(DropReason.BAD_ENCAPSULATION, VX.decapsulate(datagram(0x08000000, 1 << 8, "ff:ff:ff:ff:ff:ff",
                0x0800, inner), 1450), "broadcast");
        assertEquals(DropReason.BAD_ENCAPSULATION, VX.decapsulate(datagram(0x08000000, 1 << 8, "c6:d2:32:6f:8f:45",
                0x0800, inner), 1450), "another MAC");
        assertEquals(DropReason.NOT_IPV4, VX.decapsulate(datagram(0x08000000, 1 << 8, "c6:d2:32:6f:8f:44", 0x0806,
                new byte[28]), 1450), "ARP is never answered");
        assertEquals(DropReason.NOT_IPV4, VX.decapsulate(datagram(0x08000000, 1 << 8, "c6:d2:32:6f:8f:44", 0x86dd,
                new byte[40]), 1450));
    }

    @Test
    void theLargestVniFitsTheHeader() {
        VxlanEncapsulator max = VxlanEncapsulator.of(VxlanEncapsulator.MAX_VNI, "02:00:00:00:00:01");
        byte[] inner = Packets.ipv4(addr(100, 96, 2, 3), addr(100, 96, 1, 2), 6, 64, 40);
        assertNull(max.decapsulate(datagram(0x08000000, 0xffffff00, "02:00:00:00:00:01", 0x0800, inner), 1450));
        assertThrows(IllegalArgumentException.class, () -> VxlanEncapsulator.of(1 << 24, "02:00:00:00:00:01"));
        assertThrows(IllegalArgumentException.class, () -> VxlanEncapsulator.of(-1, "02:00:00:00:00:01"));
    }

    @Test
    void leasesItCannotUseAreRefusedWithTheReason() {
        assertMessage("not vxlan", lease(null, null));
        assertMessage("not vxlan", lease("host-gw", "{\"VNI\":1,\"VtepMAC\":\"0a:58:64:60:02:01\"}"));
        // BackendData is read by VxlanLeaseData, as the kernel backend reads it: the same leases are malformed
        assertMessage("no BackendData", lease("vxlan", null));
        assertMessage("not an object", lease("vxlan", "[1,2]"));
        assertMessage("not JSON", lease("vxlan", "{"));
        assertMessage("no VNI", lease("vxlan", "{\"VtepMAC\":\"0a:58:64:60:02:01\"}"));
        assertMessage("VNI is not a uint32: \"1\"", lease("vxlan",
                "{\"VNI\":\"1\",\"VtepMAC\":\"0a:58:64:60:02:01\"}"));
        assertMessage("VNI is not a uint32: 1.0", lease("vxlan", "{\"VNI\":1.0,\"VtepMAC\":\"0a:58:64:60:02:01\"}"));
        assertMessage("VNI 2, this network's is 1", lease("vxlan", "{\"VNI\":2,\"VtepMAC\":\"0a:58:64:60:02:01\"}"));
        assertMessage("VNI is not a uint32: 4294967297", lease("vxlan",
                "{\"VNI\":4294967297,\"VtepMAC\":\"0a:58:64:60:02:01\"}"));
        assertMessage("no VtepMAC", lease("vxlan", "{\"VNI\":1}"));
        assertMessage("not a 6-byte MAC", lease("vxlan", "{\"VNI\":1,\"VtepMAC\":\"0a:58:64:60:02\"}"));
        assertMessage("not a 6-byte MAC", lease("vxlan", "{\"VNI\":1,\"VtepMAC\":\"0a:58:64:60:02:zz\"}"));
        assertMessage("not a unicast", lease("vxlan", "{\"VNI\":1,\"VtepMAC\":\"01:00:5e:00:00:01\"}"));
        assertMessage("not a unicast", lease("vxlan", "{\"VNI\":1,\"VtepMAC\":\"00:00:00:00:00:00\"}"));
        // Keys are matched as Go does, case-insensitively, and MACs read in every form Go's net.ParseMAC reads.
        VX.peerContext(lease("vxlan", "{\"vni\":1,\"vtepmac\":\"0a:58:64:60:02:01\"}"));
        assertEquals("vxlan peer 0a:58:64:60:02:01",
                VX.peerContext(lease("vxlan", "{\"VNI\":1,\"VtepMAC\":\"0A58.6460.0201\"}")).toString());
    }

    @Test
    void aPeerTableSkipsAndListsTheLeasesItCannotUse() {
        PeerTable t = PeerTable.builder(VX)
                .put(lease("vxlan", "{\"VNI\":1,\"VtepMAC\":\"0a:58:64:60:02:01\"}"), 8472)
                .put(new Lease(Ipv4Prefix.parse("100.96.3.0/24"), new LeaseAttributes(
                        Ipv4Prefix.parseAddress("10.168.0.4"), null, "vxlan", "{\"VNI\":1}"), null), 8472)
                .build();
        assertEquals(1, t.size());
        assertTrue(t.skippedLeases().get(Ipv4Prefix.parse("100.96.3.0/24")).contains("no VtepMAC"));
        assertNull(t.lookup(addr(100, 96, 3, 5)), "a skipped lease routes nowhere");
        // A later good lease for the subnet replaces the skipped one.
        PeerTable fixed = t.toBuilder().put(new Lease(Ipv4Prefix.parse("100.96.3.0/24"), new LeaseAttributes(
                Ipv4Prefix.parseAddress("10.168.0.4"), null, "vxlan", "{\"VNI\":1,\"VtepMAC\":\"0a:58:64:60:03:01\"}"),
                null), 8472).build();
        assertEquals(2, fixed.size());
        assertTrue(fixed.skippedLeases().isEmpty());
    }

    @Test
    void randomVtepMacsAreLocallyAdministeredUnicast() {
        for (int i = 0; i < 100; i++) {
            String mac = VxlanEncapsulator.randomVtepMac();
            int first = Integer.parseInt(mac.substring(0, 2), 16);
            assertEquals(2, first & 3, mac);
            assertEquals(mac, VxlanEncapsulator.of(1, mac).vtepMac());
        }
    }

    private static void assertMessage(String part, Lease lease) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VX.peerContext(lease));
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }

    private static ByteBuffer datagram(int flags, int vniWord, String dstMac, int etherType, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(22 + payload.length);
        b.putInt(flags).putInt(vniWord);
        for (String octet : dstMac.split(":")) {
            b.put((byte) Integer.parseInt(octet, 16));
        }
        b.put(new byte[] {2, 0, 0, 0, 0, 9}).putShort((short) etherType).put(payload);
        return b.flip();
    }
}
