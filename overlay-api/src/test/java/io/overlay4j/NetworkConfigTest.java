package io.overlay4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class NetworkConfigTest {

    private static void assertConfig(NetworkConfig c, String network, int len, String min, String max) {
        assertEquals(network, c.network().toString());
        assertEquals(len, c.subnetLen());
        assertEquals(min, c.subnetMin().getHostAddress());
        assertEquals(max, c.subnetMax().getHostAddress());
    }

    private static void assertInvalid(String json, String message) {
        OverlayException e = assertThrows(OverlayException.class, () -> NetworkConfig.parse(json), json);
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertEquals(message, e.getMessage());
    }

    @Test
    void workedExamples() {
        NetworkConfig c = NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\"}");
        assertConfig(c, "10.5.0.0/16", 24, "10.5.1.0", "10.5.255.0");
        assertEquals("udp", c.backendType());
        assertNull(c.backendJson());
        assertConfig(NetworkConfig.parse("{\"Network\":\"10.5.0.0/22\"}"), "10.5.0.0/22", 24, "10.5.1.0", "10.5.3.0");
        assertConfig(NetworkConfig.parse("{\"Network\":\"10.5.0.0/23\"}"), "10.5.0.0/23", 25, "10.5.0.128",
                "10.5.1.128");
        assertConfig(NetworkConfig.parse("{\"Network\":\"10.5.0.0/28\"}"), "10.5.0.0/28", 30, "10.5.0.4",
                "10.5.0.12");
        assertInvalid("{\"Network\":\"10.5.0.0/29\"}", "network is too small. Minimum useful network prefix is /28");
        assertInvalid("{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":17}",
                "network must be able to accommodate at least four subnets");
        assertConfig(NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":18}"), "10.5.0.0/16", 18,
                "10.5.64.0", "10.5.192.0");
        NetworkConfig doc = NetworkConfig.parse("{\"Network\":\"10.0.0.0/8\",\"SubnetLen\":20,\"SubnetMin\":"
                + "\"10.10.0.0\",\"SubnetMax\":\"10.99.0.0\",\"Backend\":{\"Type\":\"udp\",\"Port\":7890}}");
        assertConfig(doc, "10.0.0.0/8", 20, "10.10.0.0", "10.99.0.0");
        assertEquals("udp", doc.backendType());
        assertEquals(7890, doc.backendInt("Port", 8285));
        assertEquals(7890, doc.backendInt("port", 8285));
        assertEquals(8285, doc.backendInt("Missing", 8285));
        assertEquals("{\"Type\":\"udp\",\"Port\":7890}", doc.backendJson());
        NetworkConfig v6 = NetworkConfig.parse(
                "{\"Network\":\"10.5.0.0/16\",\"EnableIPv6\":true,\"IPv6Network\":\"fc00::/48\"}");
        assertTrue(v6.enableIPv6());
        assertFalse(c.enableIPv6());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":31}|SubnetLen must be less than /31",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":32}|SubnetLen must be less than /31",
        "{\"Network\":\"10.5.0.0/29\",\"SubnetLen\":30}|network must be able to accommodate at least four subnets",
        "{}|please define a correct Network parameter in the flannel config",
        "{\"Network\":\"0.0.0.0/0\"}|please define a correct Network parameter in the flannel config",
        "{\"Network\":\"fc00::/48\"}|invalid IPv4 CIDR format",
        "{\"Network\":\"10.5.0.0\"}|invalid CIDR address: 10.5.0.0",
        "{\"Network\":\"10.5.0.0/33\"}|invalid CIDR address: 10.5.0.0/33",
        "{\"Network\":null}|invalid CIDR address: null",
        "{\"Network\":16}|invalid CIDR address: 16",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetMin\":\"10.6.0.0\"}|SubnetMin is not in the range of the Network",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetMax\":\"10.4.255.0\"}|SubnetMax is not in the range of the Network",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetMin\":\"10.5.1.1\"}|SubnetMin is not on a SubnetLen boundary: 10.5.1.1",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetMax\":\"10.5.9.128\"}|SubnetMax is not on a SubnetLen boundary: "
            + "10.5.9.128",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetMin\":\"banana\"}|invalid IP address: banana",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":\"24\"}|json: cannot unmarshal string into Go struct field "
            + "Config.SubnetLen of type uint",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":24.5}|json: cannot unmarshal number 24.5 into Go struct field "
            + "Config.SubnetLen of type uint",
        "{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":-1}|json: cannot unmarshal number -1 into Go struct field "
            + "Config.SubnetLen of type uint",
        "{\"Network\":\"10.5.0.0/16\",\"EnableIPv6\":\"yes\"}|json: cannot unmarshal string into Go struct field "
            + "Config.EnableIPv6 of type bool",
        "{\"Network\":\"10.5.0.0/16\",\"Backend\":\"vxlan\"}|error decoding Backend property of config: json: "
            + "cannot unmarshal string into Go value of type struct { Type string }",
        "{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":1}}|error decoding Backend property of config: json: "
            + "cannot unmarshal number into Go struct field .Type of type string",
        "{\"Network\":\"10.5.0.0/16\",\"EnableIPv4\":false}|EnableIPv4 is false, but overlay4j supports IPv4 "
            + "networks only",
    })
    void errors(String json, String message) {
        assertInvalid(json, message);
    }

    @Test
    void malformedJsonIsConfigInvalid() {
        OverlayException e = assertThrows(OverlayException.class, () -> NetworkConfig.parse("{\"Network\":"));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertTrue(e.getMessage().startsWith("invalid JSON at offset 11"), e.getMessage());
        assertEquals(OverlayException.Kind.CONFIG_INVALID,
                assertThrows(OverlayException.class, () -> NetworkConfig.parse("[]")).kind());
    }

    @Test
    void keysAreCaseInsensitiveAndUnknownKeysIgnored() {
        NetworkConfig c = NetworkConfig.parse("{\"network\":\"10.5.0.0/16\",\"SUBNETLEN\":26,\"subnetmin\":"
                + "\"10.5.0.64\",\"backend\":{\"type\":\"VXLAN\",\"vni\":4},\"Whatever\":[1,2],\"BackendType\":5}");
        assertConfig(c, "10.5.0.0/16", 26, "10.5.0.64", "10.5.255.192");
        assertEquals("vxlan", c.backendType());
        assertEquals(4, c.backendInt("VNI", 1));
    }

    @Test
    void hostBitsAreMasked() {
        assertConfig(NetworkConfig.parse("{\"Network\":\"10.5.1.7/16\"}"), "10.5.0.0/16", 24, "10.5.1.0",
                "10.5.255.0");
    }

    @Test
    void emptyOrNullBackendGivesEmptyType() {
        NetworkConfig empty = NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"Backend\":{}}");
        assertEquals("", empty.backendType());
        assertEquals("{}", empty.backendJson());
        NetworkConfig nul = NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"Backend\":null}");
        assertEquals("", nul.backendType());
        assertEquals(1, nul.backendInt("Port", 1));
        assertEquals(nul, NetworkConfig.parse(nul.toJson()));
    }

    @Test
    void nullValuesKeepDefaults() {
        assertConfig(NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":null,\"EnableIPv6\":null}"),
                "10.5.0.0/16", 24, "10.5.1.0", "10.5.255.0");
        assertConfig(NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"SubnetMin\":\"0.0.0.0\"}"),
                "10.5.0.0/16", 24, "10.5.1.0", "10.5.255.0");
    }

    @Test
    void backendIntRejectsNonIntegers() {
        NetworkConfig c = NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Port\":\"8285\"}}");
        OverlayException e = assertThrows(OverlayException.class, () -> c.backendInt("Port", 1));
        assertEquals(OverlayException.Kind.CONFIG_INVALID, e.kind());
        assertEquals("Backend property Port must be an integer: \"8285\"", e.getMessage());
    }

    @Test
    void roundTripsThroughJson() {
        for (String json : new String[] {
            "{\"Network\":\"10.5.0.0/16\"}",
            "{\"Network\":\"10.0.0.0/8\",\"SubnetLen\":20,\"SubnetMin\":\"10.10.0.0\",\"SubnetMax\":\"10.99.0.0\","
                + "\"Backend\":{\"Type\":\"udp\",\"Port\":7890}}",
            "{\"Network\":\"10.5.0.0/16\",\"EnableIPv6\":true,\"Backend\":{ \"Type\" : \"VXLAN\" }}"}) {
            NetworkConfig c = NetworkConfig.parse(json);
            assertEquals(c, NetworkConfig.parse(c.toJson()), json);
            assertEquals(c.hashCode(), NetworkConfig.parse(c.toJson()).hashCode());
        }
        assertEquals("{\"Network\":\"10.5.0.0/16\",\"SubnetLen\":24,\"SubnetMin\":\"10.5.1.0\",\"SubnetMax\":"
                + "\"10.5.255.0\",\"Backend\":{\"Type\":\"vxlan\"}}",
                NetworkConfig.parse("{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}").toJson());
    }

    @Test
    void builderAppliesSameRules() {
        NetworkConfig c = NetworkConfig.builder().network(Ipv4Prefix.parse("100.96.0.0/16")).build();
        assertEquals(NetworkConfig.parse("{\"Network\":\"100.96.0.0/16\"}"), c);
        NetworkConfig full = NetworkConfig.builder().network(Ipv4Prefix.parse("10.0.0.0/8")).subnetLen(20)
                .subnetMin(Ipv4Prefix.parseAddress("10.10.0.0")).subnetMax(Ipv4Prefix.parseAddress("10.99.0.0"))
                .backendJson("{\"Type\":\"UDP\", \"Port\":7890}").build();
        assertConfig(full, "10.0.0.0/8", 20, "10.10.0.0", "10.99.0.0");
        assertEquals("udp", full.backendType());
        assertEquals("{\"Type\":\"UDP\",\"Port\":7890}", full.backendJson());
        assertEquals(full, NetworkConfig.parse(full.toJson()));
        OverlayException e = assertThrows(OverlayException.class,
                () -> NetworkConfig.builder().network(Ipv4Prefix.parse("10.5.0.0/16")).subnetLen(31).build());
        assertEquals("SubnetLen must be less than /31", e.getMessage());
        assertEquals("please define a correct Network parameter in the flannel config",
                assertThrows(OverlayException.class, () -> NetworkConfig.builder().build()).getMessage());
        assertEquals(OverlayException.Kind.CONFIG_INVALID,
                assertThrows(OverlayException.class, () -> NetworkConfig.builder().backendJson("{")).kind());
    }
}
