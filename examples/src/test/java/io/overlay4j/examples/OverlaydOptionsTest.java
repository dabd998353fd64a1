package io.overlay4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** overlayd's flanneld-compatible flags and FLANNELD_* variables. */
class OverlaydOptionsTest {

    private static Overlayd.Options parse(Map<String, String> env, String... args) {
        return Overlayd.Options.parse(args, env);
    }

    @Test
    void defaultsAreFlanneldDefaults() {
        Overlayd.Options o = parse(Map.of());
        assertEquals(List.of("http://127.0.0.1:4001", "http://127.0.0.1:2379"), o.endpoints);
        assertEquals("/coreos.com/network", o.prefix);
        assertEquals(Path.of("/run/flannel/subnet.env"), o.subnetFile);
        assertEquals(60, o.renewMarginMinutes);
        assertEquals(0, o.healthzPort);
        assertEquals("0.0.0.0", o.healthzIp);
        assertFalse(o.ipMasq);
        assertNull(o.publicIp);
    }

    @Test
    void flagsInBothFormsAndRepeatedIface() {
        Overlayd.Options o = parse(Map.of(), "--etcd-endpoints=http://127.0.0.1:2379,http://127.0.0.1:2380",
                "--etcd-prefix", "/x/network", "--iface", "eth1", "--iface=10.0.0.5", "--public-ip=192.0.2.7",
                "--subnet-file", "/tmp/s.env", "--subnet-lease-renew-margin=5", "--ip-masq", "--healthz-port=8471",
                "-healthz-ip=127.0.0.1");
        assertEquals(List.of("http://127.0.0.1:2379", "http://127.0.0.1:2380"), o.endpoints);
        assertEquals("/x/network", o.prefix);
        assertEquals(List.of("eth1", "10.0.0.5"), o.ifaces);
        assertEquals(Ipv4Prefix.parseAddress("192.0.2.7"), o.publicIp);
        assertEquals(Path.of("/tmp/s.env"), o.subnetFile);
        assertEquals(5, o.renewMarginMinutes);
        assertTrue(o.ipMasq);
        assertEquals(8471, o.healthzPort);
        assertEquals("127.0.0.1", o.healthzIp);
    }

    @Test
    void environmentFormsAndTheCommandLineWins() {
        Overlayd.Options o = parse(Map.of("FLANNELD_ETCD_ENDPOINTS", "http://127.0.0.1:12379",
                "FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "30", "FLANNELD_IP_MASQ", "true", "FLANNELD_IFACE", "eth9"),
                "--subnet-lease-renew-margin=45");
        assertEquals(List.of("http://127.0.0.1:12379"), o.endpoints);
        assertEquals(45, o.renewMarginMinutes);
        assertTrue(o.ipMasq);
        assertEquals(List.of("eth9"), o.ifaces);
    }

    @Test
    void badFlagsAreClearErrors() {
        assertMessage("unknown flag --nope", "--nope");
        assertMessage("--subnet-lease-renew-margin must be 1..1439", "--subnet-lease-renew-margin=1440");
        assertMessage("--subnet-lease-renew-margin must be 1..1439", "--subnet-lease-renew-margin", "0");
        assertMessage("--subnet-lease-renew-margin needs a whole number", "--subnet-lease-renew-margin=soon");
        assertMessage("--public-ip needs an IPv4 address", "--public-ip=host.example");
        assertMessage("flag --etcd-prefix needs a value", "--etcd-prefix");
        assertMessage("is not an http:// or https:// URL", "--etcd-endpoints=127.0.0.1:2379");
        assertMessage("--healthz-port must be 0..65535", "--healthz-port=70000");
        assertMessage("unexpected argument 'eth0'", "eth0");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> parse(Map.of("FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "2000")));
        assertTrue(e.getMessage().contains("1..1439"), e.getMessage());
    }

    private static void assertMessage(String expected, String... args) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> parse(Map.of(), args));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }
}
