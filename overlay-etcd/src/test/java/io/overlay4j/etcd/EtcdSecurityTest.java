package io.overlay4j.etcd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import io.overlay4j.etcd.testing.EtcdServerExtension;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Connection options: TLS with client certificates, user and password, and an etcd that is not there. */
@Timeout(60)
class EtcdSecurityTest {
    @RegisterExtension
    static final EtcdServerExtension TLS = EtcdServerExtension.withTls();
    @RegisterExtension
    static final EtcdServerExtension AUTH = new EtcdServerExtension();
    private static final String PREFIX = "/coreos.com/network";
    private static final LeaseAttributes NODE = LeaseAttributes.udp(Ipv4Prefix.parseAddress("10.168.0.2"));

    private static EtcdSubnetAllocator.Builder builder(String endpoint) {
        return EtcdSubnetAllocator.builder().endpoints(endpoint).requestTimeout(Duration.ofSeconds(3));
    }

    @Test
    void tlsWithClientCertificates() {
        TLS.etcdctl("put", PREFIX + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        try (EtcdSubnetAllocator a = builder(TLS.endpoint())
                .tls(TLS.caFile(), TLS.clientCertFile(), TLS.clientKeyFile()).build()) {
            Lease lease = a.acquire(NODE, null);
            assertEquals(List.of(lease), a.leases());
        }
        // Without a certificate and key the allocator speaks plaintext, as flannel: the TLS server refuses it.
        try (EtcdSubnetAllocator plain = builder(TLS.endpoint()).tls(TLS.caFile(), null, null).build()) {
            OverlayException e = assertThrows(OverlayException.class, plain::networkConfig);
            assertEquals(Kind.STORE_UNAVAILABLE, e.kind(), e.getMessage());
        }
    }

    @Test
    void userAndPassword() {
        AUTH.etcdctl("put", PREFIX + "/config", "{\"Network\":\"100.96.0.0/16\"}");
        AUTH.etcdctl("user", "add", "root", "--new-user-password=s3cret");
        AUTH.etcdctl("auth", "enable");
        try (EtcdSubnetAllocator a = builder(AUTH.endpoint()).credentials("root", "s3cret").build()) {
            Lease lease = a.acquire(NODE, null);
            assertEquals(List.of(lease), a.leases());
        }
        try (EtcdSubnetAllocator anonymous = builder(AUTH.endpoint()).build()) {
            OverlayException e = assertThrows(OverlayException.class, anonymous::networkConfig);
            assertEquals(Kind.STORE_UNAVAILABLE, e.kind(), e.getMessage());
        }
    }

    @Test
    void buildsWithoutEtcdAndFailsCallsWithStoreUnavailable() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        String endpoint = "http://127.0.0.1:" + port;
        try (EtcdSubnetAllocator a = builder(endpoint).build()) {
            long t = System.nanoTime();
            OverlayException e = assertThrows(OverlayException.class, a::networkConfig);
            double seconds = (System.nanoTime() - t) / 1e9;
            assertEquals(Kind.STORE_UNAVAILABLE, e.kind());
            assertTrue(e.getMessage().startsWith("etcd at " + endpoint + ": "), e.getMessage());
            assertTrue(e.getCause() != null);
            assertTrue(seconds < 5, "bounded by the request timeout: " + seconds + " s");
            assertEquals(Kind.STORE_UNAVAILABLE,
                    assertThrows(OverlayException.class, () -> a.acquire(NODE, null)).kind());
        }
    }
}
