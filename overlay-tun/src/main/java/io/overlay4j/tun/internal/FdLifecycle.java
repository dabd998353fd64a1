package io.overlay4j.tun.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The close protocol of a non-blocking descriptor used from several threads, shared by {@code LinuxTunDevice} and
 * {@code UdpSocket}. Internal use only.
 *
 * <p>Every call into the kernel is bracketed by {@link #acquire()} and {@link #release()}, which count the calls in
 * flight. {@link #close()} marks the descriptor closed and signals an eventfd that blocked callers {@code poll} on,
 * so they wake and see {@link #isClosing()}; the descriptor and the eventfd are closed (and {@code onClosed} runs)
 * only when the last call in flight has left the kernel, so no thread can ever use a descriptor number the kernel has
 * already given to someone else.
 */
public final class FdLifecycle {
    /** Set by {@link #close()}: the state is negative from then on. The low 30 bits count the calls in flight. */
    private static final int CLOSED = 0x8000_0000;
    /** Set with {@link #CLOSED} by the one thread that closes the descriptors, once the count is back to zero. */
    private static final int DONE = 0x4000_0000;

    private final int fd;
    private final int wakeFd;
    private final Runnable onClosed;
    private final AtomicInteger state = new AtomicInteger();
    private final ByteBuffer one = ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder()).putLong(0, 1L);

    /**
     * @param fd       the descriptor to guard
     * @param wakeFd   an eventfd that blocked callers poll on besides {@code fd}
     * @param onClosed runs once, after both descriptors are closed (free native memory, log)
     */
    public FdLifecycle(int fd, int wakeFd, Runnable onClosed) {
        this.fd = fd;
        this.wakeFd = wakeFd;
        this.onClosed = onClosed;
    }

    /** Whether {@link #close()} has not been called. */
    public boolean isOpen() {
        return state.get() >= 0;
    }

    /** Whether {@link #close()} has been called: a caller waiting in a loop must give up. */
    public boolean isClosing() {
        return state.get() < 0;
    }

    /**
     * Registers a call into the kernel. One atomic add and no retry loop: under contention (two threads on one
     * descriptor, the usual case for a TUN) a compare-and-set loop fails now and then, and a branch first taken
     * under live traffic costs the JIT a deoptimisation and a recompilation of the whole forwarding loop.
     *
     * @throws ClosedChannelException if closed
     */
    public void acquire() throws ClosedChannelException {
        if (state.getAndIncrement() < 0) {
            release(); // undo; closes the descriptors if this was the last reference after a close
            throw new ClosedChannelException();
        }
    }

    /** Ends a call registered with {@link #acquire()}; the last one out after a close closes the descriptors. */
    public void release() {
        // Only the thread whose decrement leaves CLOSED with no calls in flight, and that then marks it DONE, closes:
        // a failed acquire after that (DONE set) can never bring the state back to exactly CLOSED.
        if (state.decrementAndGet() == CLOSED && state.compareAndSet(CLOSED, CLOSED | DONE)) {
            LibC.close(fd);
            LibC.close(wakeFd);
            onClosed.run();
        }
    }

    /** Marks closed and wakes blocked callers; returns at once. Idempotent. */
    public void close() {
        while (true) {
            int s = state.get();
            if (s < 0) {
                return;
            }
            // Take a reference too, so the eventfd stays open until it has been signalled.
            if (state.compareAndSet(s, (s + 1) | CLOSED)) {
                break;
            }
        }
        LibC.write(wakeFd, DirectBuffers.address(one), 8);
        release();
    }
}
