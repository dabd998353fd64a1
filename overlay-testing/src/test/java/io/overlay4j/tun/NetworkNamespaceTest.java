package io.overlay4j.tun;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.ErrnoException;
import io.overlay4j.tun.testing.TestNamespaces;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class NetworkNamespaceTest {
    @RegisterExtension
    final TestNamespaces namespaces = new TestNamespaces();

    @Test
    void callRunsInsideTheNamespace() throws Exception {
        long root = NetworkNamespace.currentInode();
        NetworkNamespace ns = namespaces.create();
        long inside = ns.call(NetworkNamespace::currentInode);
        assertNotEquals(root, inside, "call must not run in the caller's namespace");
        assertEquals(ns.inode(), inside);
        assertEquals(root, NetworkNamespace.currentInode(), "the caller's thread must stay where it was");
        assertTrue(namespaces.exec(ns, "ip", "-br", "link").contains("lo"), "visible to ip netns exec");
        assertTrue(TestNamespaces.exec(java.util.List.of("ip", "netns", "list")).contains(ns.name()));
    }

    @Test
    void threadsStartedInsideInheritTheNamespace() throws Exception {
        NetworkNamespace ns = namespaces.create();
        long child = ns.call(() -> {
            AtomicLong seen = new AtomicLong();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread t = new Thread(() -> {
                try {
                    seen.set(NetworkNamespace.currentInode());
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            t.start();
            t.join();
            if (failure.get() != null) {
                throw new AssertionError(failure.get());
            }
            return seen.get();
        });
        assertEquals(ns.inode(), child);
    }

    @Test
    void newThreadEntersTheNamespace() throws Exception {
        NetworkNamespace ns = namespaces.create();
        AtomicLong seen = new AtomicLong();
        Thread t = ns.newThread(() -> {
            try {
                seen.set(NetworkNamespace.currentInode());
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }, "o4jt-test");
        t.start();
        t.join();
        assertEquals(ns.inode(), seen.get());
        assertNotEquals(NetworkNamespace.currentInode(), seen.get());
    }

    @Test
    void threadFactoryThreadsEnterTheNamespaceWhoeverStartsThem() throws Exception {
        NetworkNamespace ns = namespaces.create();
        AtomicLong seen = new AtomicLong();
        Thread t = ns.threadFactory().newThread(() -> {
            try {
                seen.set(NetworkNamespace.currentInode());
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        });
        assertTrue(t.isDaemon());
        assertEquals(ns.name() + "-1", t.getName());
        t.start(); // from the root namespace's thread
        t.join();
        assertEquals(ns.inode(), seen.get());
    }

    @Test
    void callRethrowsTheTasksException() throws Exception {
        NetworkNamespace ns = namespaces.create();
        IOException thrown = new IOException("boom");
        assertSame(thrown, assertThrows(IOException.class, () -> ns.call(() -> {
            throw thrown;
        })));
        assertThrows(IllegalStateException.class, () -> ns.run(() -> {
            throw new IllegalStateException("x");
        }));
        assertEquals(42, ns.call(() -> ns.call(() -> 42)), "nested call runs directly");
    }

    @Test
    void createTwiceIsEexistAndOpenSharesTheNamespace() throws Exception {
        NetworkNamespace ns = namespaces.create();
        ErrnoException e = assertThrows(ErrnoException.class, () -> NetworkNamespace.create(ns.name()));
        assertEquals(ErrnoException.EEXIST, e.errno());
        assertTrue(e.getMessage().contains(ns.name()), e.getMessage());
        assertTrue(Files.exists(ns.path()), "a failed create must not remove the existing namespace");
        try (NetworkNamespace again = NetworkNamespace.open(ns.name())) {
            assertEquals(ns.inode(), again.call(NetworkNamespace::currentInode));
        }
        assertThrows(NoSuchFileException.class, () -> NetworkNamespace.open(namespaces.uniqueName()));
    }

    @Test
    void deleteRemovesTheNameAndCloseStopsTheThread() throws Exception {
        NetworkNamespace ns = namespaces.create();
        assertTrue(Files.exists(ns.path()));
        ns.close();
        ns.close();
        assertThrows(IllegalStateException.class, () -> ns.call(() -> 1));
        assertTrue(Files.exists(ns.path()), "close must not delete");
        ns.delete();
        assertFalse(Files.exists(ns.path()));
        assertFalse(TestNamespaces.exec(java.util.List.of("ip", "netns", "list")).contains(ns.name()));
        ns.delete();
    }
}
