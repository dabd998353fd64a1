package io.overlay4j.tun;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Route;
import io.overlay4j.TunDevice;
import io.overlay4j.TunOptions;
import io.overlay4j.testing.AbstractTunDeviceContractTest;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The TUN device contract against the kernel: {@link LinuxTunDevice} in a fresh network namespace, reached by
 * sockets in that namespace the way flannel's host reaches {@code flannel0}.
 */
class LinuxTunDeviceContractTest extends AbstractTunDeviceContractTest {
    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    private NetworkNamespace ns;

    @Override
    protected TunDevice open(TunOptions options) throws Exception {
        if (ns == null) {
            ns = namespaces.create();
        }
        return ns.call(() -> LinuxTunDevice.open(options));
    }

    @Override
    protected void connect(TunDevice device) throws Exception {
        try (NetlinkRouteProgrammer p = ns.call(NetlinkRouteProgrammer::open)) {
            p.addAddress(device.name(), Ipv4Prefix.fromInt(LOCAL), 32);
            p.setLinkUp(device.name());
            p.addRoute(Route.viaDevice(Ipv4Prefix.parse("100.96.0.0/16"), device.name()));
        }
    }

    @Override
    protected void sendThroughDevice(TunDevice device, int port, byte[] payload) throws Exception {
        ns.run(() -> {
            try (DatagramChannel ch = DatagramChannel.open(StandardProtocolFamily.INET)) {
                ch.send(ByteBuffer.wrap(payload), new InetSocketAddress(Ipv4Prefix.fromInt(REMOTE), port));
            }
        });
    }

    @Override
    protected Receiver receiveFromDevice(TunDevice device, int port) throws Exception {
        DatagramChannel ch = ns.call(() -> DatagramChannel.open(StandardProtocolFamily.INET)
                .bind(new InetSocketAddress(Ipv4Prefix.fromInt(LOCAL), port)));
        ch.configureBlocking(false);
        return new Receiver() {
            private final ByteBuffer buffer = ByteBuffer.allocate(65536);

            @Override
            public byte[] receive(Duration timeout) throws Exception {
                long deadline = System.nanoTime() + timeout.toNanos();
                while (true) {
                    buffer.clear();
                    if (ch.receive(buffer) != null) {
                        return Arrays.copyOf(buffer.array(), buffer.position());
                    }
                    if (System.nanoTime() > deadline) {
                        return null;
                    }
                    Thread.sleep(2);
                }
            }

            @Override
            public void close() throws IOException {
                ch.close();
            }
        };
    }
}
