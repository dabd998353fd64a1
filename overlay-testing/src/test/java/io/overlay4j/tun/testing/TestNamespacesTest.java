package io.overlay4j.tun.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class TestNamespacesTest {

    @Test
    void namesAreUniqueAndPrefixed() {
        TestNamespaces a = new TestNamespaces();
        String n1 = a.uniqueName();
        String n2 = a.uniqueName();
        assertNotEquals(n1, n2);
        assertTrue(n1.matches("o4jt-[0-9a-f]{8}"), n1);
        assertTrue(new TestNamespaces("o4jx").uniqueName().startsWith("o4jx-"));
        assertThrows(IllegalArgumentException.class, () -> new TestNamespaces("toolong"));
    }

    @Test
    void connectedNamespacesExchangeDatagramsAndCloseRemovesThem() throws Exception {
        Requirements.requireKernelNetworking();
        NetworkNamespace a;
        NetworkNamespace b;
        try (TestNamespaces namespaces = new TestNamespaces()) {
            a = namespaces.create();
            b = namespaces.create();
            namespaces.connect(a, "o4jt-a0", "10.99.0.1/24", b, "o4jt-b0", "10.99.0.2/24");
            try (DatagramChannel rx = b.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                    .bind(new InetSocketAddress(Ipv4Prefix.parseAddress("10.99.0.2"), 0)))) {
                int port = ((InetSocketAddress) rx.getLocalAddress()).getPort();
                a.run(() -> {
                    try (DatagramChannel tx = DatagramChannel.open(StandardProtocolFamily.INET)) {
                        tx.send(ByteBuffer.wrap("across".getBytes(StandardCharsets.US_ASCII)),
                                new InetSocketAddress(Ipv4Prefix.parseAddress("10.99.0.2"), port));
                    }
                });
                rx.configureBlocking(false);
                ByteBuffer buf = ByteBuffer.allocate(64);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                InetSocketAddress from;
                while ((from = (InetSocketAddress) rx.receive(buf)) == null && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                assertTrue(from != null, "no datagram across the veth");
                assertEquals("10.99.0.1", from.getAddress().getHostAddress());
                assertEquals("across", new String(buf.array(), 0, buf.position(), StandardCharsets.US_ASCII));
            }
            assertTrue(namespaces.exec(a, "cat", "/proc/net/dev").contains("o4jt-a0"));
            assertThrows(IOException.class, () -> namespaces.ip(a, "link", "show", "o4jt-none"));
        }
        assertFalse(Files.exists(a.path()));
        assertFalse(Files.exists(b.path()));
    }
}
