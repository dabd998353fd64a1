package io.overlay4j.vxlan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import org.junit.jupiter.api.Test;

/** The vxlan options as flannel's {@code parseVXLANConfig} reads them, and the errors that name the field. */
class VxlanConfigTest {

    private static VxlanConfig config(String backend) {
        return VxlanConfig.of(NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\",\"Backend\":" + backend + "}"));
    }

    private static String error(String backend) {
        OverlayException e = assertThrows(OverlayException.class, () -> config(backend));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        return e.getMessage();
    }

    @Test
    void defaultsAreFlannels() {
        VxlanConfig c = config("{\"Type\":\"vxlan\"}");
        assertEquals(VxlanConfig.defaults(), c);
        assertEquals(1, c.vni());
        assertEquals("flannel.1", c.deviceName());
        assertEquals(0, c.port());
        assertEquals(8472, c.effectivePort());
        assertEquals(1450, c.deviceMtu(1500), "FLANNEL_MTU = underlay MTU - 50");
        assertEquals(VxlanConfig.defaults(), VxlanConfig.parse(null));
        assertEquals(VxlanConfig.defaults(), VxlanConfig.parse("null"));
    }

    @Test
    void everyOptionIsRead() {
        VxlanConfig c = config("{\"Type\":\"vxlan\",\"VNI\":4096,\"Port\":4789,\"MTU\":9000,\"GBP\":true,"
                + "\"Learning\":true,\"DirectRouting\":true,\"Unknown\":[1,2]}");
        assertEquals(new VxlanConfig(4096, 4789, 9000, true, true, true), c);
        assertEquals("flannel.4096", c.deviceName());
        assertEquals(8950, c.deviceMtu(1500), "the config's MTU wins over the interface's");
    }

    @Test
    void keysMatchCaseInsensitivelyAndNullKeepsTheDefault() {
        assertEquals(new VxlanConfig(2, 8472, 0, false, false, true),
                config("{\"type\":\"vxlan\",\"vni\":2,\"port\":8472,\"directrouting\":true,\"mtu\":null}"));
        assertEquals(VxlanConfig.defaults(), config("{\"Type\":\"vxlan\",\"VNI\":null,\"Port\":null}"));
        assertEquals(0, config("{\"Type\":\"vxlan\",\"VNI\":0}").vni(), "VNI 0 is a valid kernel VNI");
    }

    @Test
    void wrongTypesNameTheFieldAsGoDoes() {
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field "
                + "VXLANConfig.port of type int", error("{\"Type\":\"vxlan\",\"Port\":\"8472\"}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field "
                + "VXLANConfig.directRouting of type bool", error("{\"Type\":\"vxlan\",\"DirectRouting\":\"yes\"}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal number into Go struct field "
                + "VXLANConfig.directRouting of type bool", error("{\"Type\":\"vxlan\",\"DirectRouting\":1}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal number 1.5 into Go struct field "
                + "VXLANConfig.vni of type int", error("{\"Type\":\"vxlan\",\"VNI\":1.5}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field "
                + "VXLANConfig.gbp of type bool", error("{\"Type\":\"vxlan\",\"GBP\":\"true\"}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal bool into Go struct field "
                + "VXLANConfig.port of type int", error("{\"Type\":\"vxlan\",\"Port\":true}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal array into Go struct field "
                + "VXLANConfig.mtu of type int", error("{\"Type\":\"vxlan\",\"MTU\":[1450]}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal object into Go struct field "
                + "VXLANConfig.learning of type bool", error("{\"Type\":\"vxlan\",\"Learning\":{}}"));
    }

    @Test
    void outOfRangeValuesNameTheField() {
        assertEquals("error decoding VXLAN backend config: VNI must be 0..16777215: 16777216",
                error("{\"Type\":\"vxlan\",\"VNI\":16777216}"));
        assertEquals("error decoding VXLAN backend config: VNI must be 0..16777215: -1",
                error("{\"Type\":\"vxlan\",\"VNI\":-1}"));
        assertEquals("error decoding VXLAN backend config: json: cannot unmarshal number 99999999999 into Go struct "
                + "field VXLANConfig.vni of type int", error("{\"Type\":\"vxlan\",\"VNI\":99999999999}"));
        assertEquals("error decoding VXLAN backend config: Port must be 0..65535 (0: the kernel's default, 8472): "
                + "65536", error("{\"Type\":\"vxlan\",\"Port\":65536}"));
        assertEquals("error decoding VXLAN backend config: Port must be 0..65535 (0: the kernel's default, 8472): "
                + "-1", error("{\"Type\":\"vxlan\",\"Port\":-1}"));
        assertEquals("error decoding VXLAN backend config: MTU must be at least 118 (the device gets MTU - 50): 100",
                error("{\"Type\":\"vxlan\",\"MTU\":100}"));
    }
}
