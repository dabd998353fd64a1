package io.overlay4j.tun;

import static java.util.Objects.requireNonNull;

import io.overlay4j.ErrnoException;
import io.overlay4j.tun.internal.Errno;
import io.overlay4j.tun.internal.LibC;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A named network namespace, as {@code ip netns} keeps them (a bind mount at {@code /run/netns/<name>}), with a
 * dedicated thread that runs code inside it.
 *
 * <p>{@code setns(2)} moves only the calling thread, so this class never moves a caller's thread: {@link #call} hands
 * the task to the namespace's own thread, which entered the namespace when it started. Threads started from inside a
 * task inherit the namespace (Linux copies the creating thread's namespaces), and so do the descriptors of sockets
 * and TUN devices created inside a task: they keep working in that namespace when used from any thread. Beware that
 * lazily started JVM-wide threads (e.g. the common fork-join pool) also inherit it if a task happens to start them.
 *
 * <p>{@link #close()} stops the dedicated thread but leaves the namespace; {@link #delete()} also removes it (it
 * disappears once no process, socket or device holds it). Namespaces made here interoperate with {@code ip netns}.
 * Needs CAP_SYS_ADMIN (root).
 */
public final class NetworkNamespace implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(NetworkNamespace.class);

    /** Where named network namespaces live, as {@code ip netns} keeps them. */
    public static final Path NETNS_DIR = Path.of("/run/netns");
    private static final String THREAD_SELF_NS = "/proc/thread-self/ns/net";
    private static final FutureTask<Void> STOP = new FutureTask<>(() -> null);

    private final String name;
    private final Path path;
    private final Object lock = new Object();
    private final BlockingQueue<FutureTask<?>> tasks = new LinkedBlockingQueue<>();
    private final Thread thread;
    private boolean closed;

    /** A task for {@link #run}: like {@link Runnable}, but it may throw. */
    @FunctionalInterface
    public interface ThrowingRunnable {
        /** Runs the task. */
        void run() throws Exception;
    }

    private NetworkNamespace(String name, Path path) throws IOException {
        this.name = name;
        this.path = path;
        CompletableFuture<Void> entered = new CompletableFuture<>();
        thread = new Thread(() -> loop(entered), "netns-" + name);
        thread.setDaemon(true);
        thread.start();
        try {
            entered.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            thread.interrupt();
            throw new IOException("interrupted while entering network namespace " + name, e);
        } catch (ExecutionException e) {
            throw asIoException(e.getCause());
        }
    }

    /**
     * Creates a new, empty network namespace {@code name} (only a down loopback device), like {@code ip netns add}.
     *
     * @throws ErrnoException with EEXIST if a namespace of that name exists, or naming the failed call
     */
    public static NetworkNamespace create(String name) throws IOException {
        Path p = pathOf(name);
        Files.createDirectories(NETNS_DIR);
        makeShared();
        try {
            Files.createFile(p);
        } catch (FileAlreadyExistsException e) {
            ErrnoException x = new ErrnoException("create network namespace " + name + " (" + p + " exists)",
                    ErrnoException.EEXIST);
            x.initCause(e);
            throw x;
        }
        AtomicReference<Throwable> failure = new AtomicReference<>();
        // unshare() leaves the calling thread in the new namespace, so it runs on a throwaway thread.
        Thread t = new Thread(() -> {
            try {
                Errno.check(LibC.unshare(LibC.CLONE_NEWNET), "unshare(CLONE_NEWNET)");
                Errno.check(LibC.mount(THREAD_SELF_NS, p.toString(), "none", LibC.MS_BIND, null),
                        "mount(" + THREAD_SELF_NS + ", " + p + ", MS_BIND)");
            } catch (Throwable e) {
                failure.set(e);
            }
        }, "netns-create-" + name);
        t.start();
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            failure.compareAndSet(null, e);
            joinUninterruptibly(t);
        }
        if (failure.get() != null) {
            LibC.umount2(p.toString(), LibC.MNT_DETACH);
            Files.deleteIfExists(p);
            throw asIoException(failure.get());
        }
        LOG.debug("created network namespace {}", name);
        try {
            return new NetworkNamespace(name, p);
        } catch (IOException | RuntimeException e) {
            deleteQuietly(p);
            throw e;
        }
    }

    /**
     * Opens the existing named namespace {@code name} (made by {@link #create} or {@code ip netns add}).
     *
     * @throws NoSuchFileException if there is none
     */
    public static NetworkNamespace open(String name) throws IOException {
        Path p = pathOf(name);
        if (!Files.exists(p)) {
            throw new NoSuchFileException(p.toString(), null, "no network namespace " + name);
        }
        return new NetworkNamespace(name, p);
    }

    private static Path pathOf(String name) {
        requireNonNull(name, "name");
        if (name.isEmpty() || name.contains("/") || name.equals(".") || name.equals("..")) {
            throw new IllegalArgumentException("invalid network namespace name: " + name);
        }
        return NETNS_DIR.resolve(name);
    }

    /** As {@code ip netns}: makes {@code /run/netns} a shared mount so namespaces propagate to other mount ns. */
    private static void makeShared() {
        String dir = NETNS_DIR.toString();
        if (LibC.mount("", dir, "none", LibC.MS_SHARED | LibC.MS_REC, null) == 0) {
            return;
        }
        if (LibC.errno() != ErrnoException.EINVAL) {
            LOG.debug("cannot make {} shared: {}", dir, Errno.last("mount(MS_SHARED)").getMessage());
            return;
        }
        // Not a mount point yet: bind it onto itself, then retry.
        if (LibC.mount(dir, dir, "none", LibC.MS_BIND | LibC.MS_REC, null) != 0
                || LibC.mount("", dir, "none", LibC.MS_SHARED | LibC.MS_REC, null) != 0) {
            LOG.debug("cannot make {} shared: {}", dir, Errno.last("mount").getMessage());
        }
    }

    /** The namespace's name. */
    public String name() {
        return name;
    }

    /** The namespace's bind mount, {@code /run/netns/<name>}. */
    public Path path() {
        return path;
    }

    /**
     * Runs {@code task} on the namespace's thread and returns its result; the task's exception, checked or not, is
     * rethrown as it is. Called from a task of this namespace it runs {@code task} directly.
     *
     * @throws IllegalStateException if the namespace is closed
     */
    public <T> T call(Callable<T> task) throws Exception {
        requireNonNull(task, "task");
        if (Thread.currentThread() == thread) {
            return task.call();
        }
        FutureTask<T> future = new FutureTask<>(task);
        synchronized (lock) {
            if (closed) {
                throw new IllegalStateException("network namespace " + name + " is closed");
            }
            tasks.add(future);
        }
        try {
            return future.get();
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof Exception) {
                throw (Exception) cause;
            }
            if (cause instanceof Error) {
                throw (Error) cause;
            }
            throw e;
        }
    }

    /** As {@link #call}, for a task without a result. */
    public void run(ThrowingRunnable task) throws Exception {
        requireNonNull(task, "task");
        call(() -> {
            task.run();
            return null;
        });
    }

    /**
     * An unstarted thread that enters this namespace (by opening {@link #path()}) before it runs {@code r}. If the
     * namespace cannot be entered (e.g. it was deleted) the thread ends without running {@code r} and its uncaught
     * exception handler receives the {@link ErrnoException}. Threads started from inside {@link #call} inherit the
     * namespace without this.
     */
    public Thread newThread(Runnable r, String threadName) {
        requireNonNull(r, "r");
        return new Thread(() -> {
            try {
                enter(path);
            } catch (IOException e) {
                throw new IllegalStateException("cannot enter network namespace " + name, e);
            }
            r.run();
        }, threadName);
    }

    /**
     * A thread factory whose threads enter this namespace before they run their task: daemon threads named
     * {@code <namespace>-N}. Give it to {@code OverlayNode.Builder.threadFactory} to run a node in this namespace, or to
     * {@code EtcdSubnetAllocator.Builder.threadFactory} to reach etcd from it, whichever thread builds or starts them.
     * A thread that cannot enter (the namespace was deleted) ends without running its task, as {@link #newThread}.
     */
    public ThreadFactory threadFactory() {
        AtomicInteger count = new AtomicInteger();
        return r -> {
            Thread t = newThread(r, name + "-" + count.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /** The namespace's inode number (as {@code stat} of its bind mount shows); distinct namespaces differ. */
    public long inode() throws IOException {
        return inodeOf(path);
    }

    /** The inode of the calling thread's network namespace ({@code /proc/thread-self/ns/net}). */
    public static long currentInode() throws IOException {
        return inodeOf(Path.of(THREAD_SELF_NS));
    }

    private static long inodeOf(Path p) throws IOException {
        return ((Number) Files.getAttribute(p, "unix:ino")).longValue();
    }

    /**
     * Closes this handle and removes the namespace's name ({@code umount2(MNT_DETACH)} and unlink, like
     * {@code ip netns del}). The kernel frees the namespace, and the devices in it, once nothing else holds it.
     * Idempotent.
     */
    public void delete() throws IOException {
        close();
        if (LibC.umount2(path.toString(), LibC.MNT_DETACH) != 0) {
            int errno = LibC.errno();
            if (errno != ErrnoException.EINVAL && errno != ErrnoException.ENOENT) {
                throw new ErrnoException("umount2(" + path + ", MNT_DETACH)", errno);
            }
        }
        Files.deleteIfExists(path);
        LOG.debug("deleted network namespace {}", name);
    }

    /** Stops the dedicated thread after the tasks already submitted; leaves the namespace. Idempotent. */
    @Override
    public void close() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            tasks.add(STOP);
        }
        if (Thread.currentThread() != thread) {
            joinUninterruptibly(thread);
        }
    }

    @Override
    public String toString() {
        return "NetworkNamespace[" + name + "]";
    }

    private void loop(CompletableFuture<Void> entered) {
        try {
            enter(path);
        } catch (Throwable e) {
            entered.completeExceptionally(e);
            return;
        }
        entered.complete(null);
        while (true) {
            FutureTask<?> task;
            try {
                task = tasks.take();
            } catch (InterruptedException e) {
                // Only close() ends this thread; an interrupt must not strand queued callers.
                continue;
            }
            if (task == STOP) {
                return;
            }
            task.run();
        }
    }

    /** Moves the calling thread into the namespace bound at {@code p}. */
    static void enter(Path p) throws IOException {
        int fd = LibC.open(p.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        Errno.check(fd, "open(" + p + ")");
        try {
            Errno.check(LibC.setns(fd, LibC.CLONE_NEWNET), "setns(" + p + ", CLONE_NEWNET)");
        } finally {
            LibC.close(fd);
        }
    }

    private static void deleteQuietly(Path p) {
        LibC.umount2(p.toString(), LibC.MNT_DETACH);
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            LOG.warn("cannot remove {}", p, e);
        }
    }

    private static void joinUninterruptibly(Thread t) {
        boolean interrupted = false;
        while (true) {
            try {
                t.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private static IOException asIoException(Throwable t) {
        if (t instanceof IOException) {
            return (IOException) t;
        }
        if (t instanceof RuntimeException) {
            throw (RuntimeException) t;
        }
        if (t instanceof Error) {
            throw (Error) t;
        }
        return new IOException(t);
    }
}
