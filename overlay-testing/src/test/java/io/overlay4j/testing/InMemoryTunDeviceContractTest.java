package io.overlay4j.testing;

import io.overlay4j.TunDevice;
import io.overlay4j.TunOptions;
import io.overlay4j.udp.testing.InMemoryTunDevice;
import io.overlay4j.udp.testing.Packets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/** The TUN device contract against {@link InMemoryTunDevice}: the test stands for the kernel on the host side. */
class InMemoryTunDeviceContractTest extends AbstractTunDeviceContractTest {
    private final InMemoryTunDevice.Factory factory = InMemoryTunDevice.factory();

    @Override
    protected TunDevice open(TunOptions options) throws Exception {
        return factory.open(options);
    }

    @Override
    protected void connect(TunDevice device) {
        // Nothing to set up: injected packets are read, written ones are taken.
    }

    @Override
    protected void sendThroughDevice(TunDevice device, int port, byte[] payload) {
        ((InMemoryTunDevice) device).inject(Packets.udp(LOCAL, 40000, REMOTE, port, payload));
    }

    @Override
    protected Receiver receiveFromDevice(TunDevice device, int port) {
        InMemoryTunDevice tun = (InMemoryTunDevice) device;
        return new Receiver() {
            @Override
            public byte[] receive(Duration timeout) throws InterruptedException {
                long deadline = System.nanoTime() + timeout.toNanos();
                while (true) {
                    long left = deadline - System.nanoTime();
                    byte[] p = left > 0 ? tun.takeWritten(left, TimeUnit.NANOSECONDS) : null;
                    if (p == null) {
                        return null;
                    }
                    if (p.length >= 28 && p[9] == 17 && toInt(p, 16) == LOCAL
                            && ((p[22] & 0xff) << 8 | p[23] & 0xff) == port) {
                        byte[] payload = new byte[p.length - 28];
                        System.arraycopy(p, 28, payload, 0, payload.length);
                        return payload;
                    }
                }
            }

            @Override
            public void close() {
            }
        };
    }

    private static int toInt(byte[] p, int off) {
        return (p[off] & 0xff) << 24 | (p[off + 1] & 0xff) << 16 | (p[off + 2] & 0xff) << 8 | p[off + 3] & 0xff;
    }
}
