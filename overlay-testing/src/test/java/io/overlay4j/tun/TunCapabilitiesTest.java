package io.overlay4j.tun;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.overlay4j.ErrnoException;
import io.overlay4j.OverlayException;
import io.overlay4j.TunOptions;
import io.overlay4j.testing.Requirements;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Capability probing. Capabilities are per thread on Linux, so a throwaway thread drops CAP_NET_ADMIN from its own
 * effective set (capset) and the rest of the JVM keeps it.
 */
class TunCapabilitiesTest {

    /** Test-only binding of capget/capset from {@code <linux/capability.h>}. */
    static final class Caps {
        static {
            Native.register("c");
        }

        /** {@code _LINUX_CAPABILITY_VERSION_3}. */
        static final int VERSION_3 = 0x20080522;

        static native int capget(Pointer header, Pointer data);

        static native int capset(Pointer header, Pointer data);

        /** Clears {@code cap} from the calling thread's effective set. */
        static void dropEffective(int cap) throws ErrnoException {
            try (Memory header = new Memory(8); Memory data = new Memory(24)) {
                header.setInt(0, VERSION_3);
                header.setInt(4, 0);
                if (capget(header, data) != 0) {
                    throw new ErrnoException("capget", Native.getLastError());
                }
                data.setInt(0, data.getInt(0) & ~(1 << cap));
                if (capset(header, data) != 0) {
                    throw new ErrnoException("capset", Native.getLastError());
                }
            }
        }
    }

    @Test
    void nothingIsMissingAsRoot() {
        Requirements.requireKernelNetworking();
        assertEquals(Optional.empty(), TunCapabilities.unavailabilityCause());
        TunCapabilities.ensureAvailable();
        assertTrue(TunCapabilities.hasNetAdmin());
    }

    @Test
    void withoutCapNetAdminTheProbeAndOpenSaySo() throws Exception {
        Requirements.requireKernelNetworking();
        CompletableFuture<Void> done = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                Caps.dropEffective(TunCapabilities.CAP_NET_ADMIN);
                assertFalse(TunCapabilities.hasNetAdmin());
                String cause = TunCapabilities.unavailabilityCause().orElseThrow();
                assertTrue(cause.contains("lacks CAP_NET_ADMIN"), cause);
                OverlayException e = assertThrows(OverlayException.class, TunCapabilities::ensureAvailable);
                assertEquals(OverlayException.Kind.NOT_PERMITTED, e.kind());

                e = assertThrows(OverlayException.class,
                        () -> LinuxTunDevice.open(new TunOptions("o4jt-noperm", 1400)));
                assertEquals(OverlayException.Kind.NOT_PERMITTED, e.kind());
                assertTrue(e.getMessage().contains("CAP_NET_ADMIN"), e.getMessage());
                assertTrue(e.getMessage().contains("ioctl(TUNSETIFF o4jt-noperm) failed: EPERM (1)"), e.getMessage());
                assertEquals(ErrnoException.EPERM, ((ErrnoException) e.getCause()).errno());
                done.complete(null);
            } catch (Throwable e) {
                done.completeExceptionally(e);
            }
        }, "o4jt-nocap");
        t.start();
        done.get(10, TimeUnit.SECONDS);
        t.join();
        assertTrue(TunCapabilities.hasNetAdmin(), "only the throwaway thread lost the capability");
    }
}
