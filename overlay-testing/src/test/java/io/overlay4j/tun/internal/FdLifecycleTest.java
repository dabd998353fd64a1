package io.overlay4j.tun.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.channels.ClosedChannelException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The close protocol on real descriptors (two eventfds): closed exactly once, never while a call is in flight. */
class FdLifecycleTest {
    private int fd;
    private int wakeFd;
    private final AtomicInteger closed = new AtomicInteger();
    private FdLifecycle life;

    @BeforeEach
    void open() {
        fd = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        wakeFd = LibC.eventfd(0, LibC.EFD_CLOEXEC);
        assertTrue(fd >= 0 && wakeFd >= 0, "eventfd failed");
        life = new FdLifecycle(fd, wakeFd, closed::incrementAndGet);
    }

    @AfterEach
    void closeLeftovers() {
        if (closed.get() == 0) {
            life.close();
        }
    }

    private static boolean isOpen(int fd) {
        return Files.exists(Path.of("/proc/self/fd/" + fd));
    }

    @Test
    void closeWithoutCallsInFlightClosesBothDescriptorsOnce() {
        life.close();
        life.close();
        assertEquals(1, closed.get());
        assertFalse(isOpen(fd));
        assertFalse(isOpen(wakeFd));
        assertTrue(life.isClosing());
        assertFalse(life.isOpen());
    }

    @Test
    void descriptorsStayOpenUntilTheLastCallInFlightLeaves() throws Exception {
        life.acquire();
        life.acquire();
        life.close();
        assertEquals(0, closed.get());
        assertTrue(isOpen(fd), "closed under a call in flight");
        life.release();
        assertEquals(0, closed.get());
        life.release();
        assertEquals(1, closed.get());
        assertFalse(isOpen(fd));
    }

    @Test
    void anAcquireAfterTheCloseFailsAndNeverClosesAgain() throws Exception {
        life.close();
        for (int i = 0; i < 3; i++) {
            assertThrows(ClosedChannelException.class, life::acquire);
        }
        assertEquals(1, closed.get(), "a refused acquire must not run the close a second time");
    }

    @Test
    void anAcquireRefusedWhileTheLastCallIsInFlightStillLetsItClose() throws Exception {
        life.acquire();
        life.close();
        assertThrows(ClosedChannelException.class, life::acquire);
        assertEquals(0, closed.get());
        life.release();
        assertEquals(1, closed.get());
    }

    @Test
    void contendedCallsAndACloseCloseExactlyOnceAndOnlyAfterTheLastCall() throws Exception {
        int threads = 4;
        CountDownLatch started = new CountDownLatch(threads);
        AtomicInteger closedDuringACall = new AtomicInteger();
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread w = new Thread(() -> {
                started.countDown();
                while (true) {
                    try {
                        life.acquire();
                    } catch (ClosedChannelException e) {
                        return;
                    }
                    if (closed.get() != 0) {
                        closedDuringACall.incrementAndGet();
                    }
                    life.release();
                }
            });
            w.start();
            workers.add(w);
        }
        started.await();
        Thread.sleep(50);
        life.close();
        for (Thread w : workers) {
            w.join(10_000);
            assertFalse(w.isAlive(), "a worker kept acquiring after the close");
        }
        assertEquals(1, closed.get());
        assertEquals(0, closedDuringACall.get(), "descriptors were closed while a call was in flight");
        assertFalse(isOpen(fd));
    }
}
