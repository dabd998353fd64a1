package io.overlay4j.udp.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Encapsulator;
import io.overlay4j.udp.FlannelUdpEncapsulator;
import io.overlay4j.udp.VxlanEncapsulator;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The JIT warm-up really runs the data path: synthetic packets make the round trip (TUN pair → egress → loopback UDP
 * → ingress admission → TUN pair) for every encapsulation, with and without virtio headers and GRO; otherwise
 * {@link Warmup#run} gives up after 100 rounds and returns 0. Runs once per configuration and JVM, so the MTUs here
 * are ones no other test uses.
 */
class WarmupTest {
    private static final long BUDGET = TimeUnit.SECONDS.toNanos(20);

    @Test
    void plainFlannelUdpPacketsMakeTheRoundTrip() {
        assertRuns(FlannelUdpEncapsulator.INSTANCE, 1301, false, false, true);
    }

    @Test
    void offloadedFlannelUdpSuperPacketsMakeTheRoundTrip() {
        assertRuns(FlannelUdpEncapsulator.INSTANCE, 1302, true, true, true);
    }

    @Test
    void vxlanFramesMakeTheRoundTripWithAnySenderPort() {
        assertRuns(VxlanEncapsulator.of(1, VxlanEncapsulator.randomVtepMac()), 1303, true, true, true);
        assertRuns(VxlanEncapsulator.of(1, VxlanEncapsulator.randomVtepMac()), 1304, false, false, false);
    }

    @Test
    void aConfigurationIsWarmedOncePerJvm() {
        assertRuns(FlannelUdpEncapsulator.INSTANCE, 1305, false, true, true);
        assertEquals(0, Warmup.run(FlannelUdpEncapsulator.INSTANCE, 1305, false, true, true, BUDGET));
    }

    private static void assertRuns(Encapsulator encapsulator, int mtu, boolean vnet, boolean gro, boolean check) {
        int rounds = Warmup.run(encapsulator, mtu, vnet, gro, check, BUDGET);
        assertTrue(rounds > 100, encapsulator + " mtu " + mtu + " vnet " + vnet + ": " + rounds + " rounds");
    }
}
