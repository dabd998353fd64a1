package io.overlay4j.udp.internal;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;

/**
 * Who may work on one direction of a forwarder right now: its own thread, which {@link #lock()}s it (parking while
 * the other thread helps), or the other thread, which only ever {@link #tryLock()}s it. Holding it is what makes one
 * thread at a time read the direction's source, use its buffers and write its counters, so packets of a flow leave in
 * the order they were read. Allocation-free; at most one thread calls {@link #lock()}.
 */
public final class PathLock {
    /** A safety net only: an unlock always unparks a registered waiter. */
    private static final long PARK_NANOS = 200_000;

    private final AtomicBoolean held = new AtomicBoolean();
    private volatile Thread waiter;

    /** Takes the lock if it is free; never waits. */
    public boolean tryLock() {
        return !held.get() && held.compareAndSet(false, true);
    }

    /** Takes the lock, parking while another thread holds it. Only the direction's own thread calls this. */
    public void lock() {
        if (tryLock()) {
            return;
        }
        waiter = Thread.currentThread();
        try {
            while (!tryLock()) {
                LockSupport.parkNanos(this, PARK_NANOS);
            }
        } finally {
            waiter = null;
        }
    }

    /**
     * Takes both branches of {@link #tryLock} and {@link #unlock} once, if the lock is free, and leaves it free: for
     * a JIT warm-up on one thread, so that the compiled forwarding loop already has the paths that contention takes
     * (else the first contended turn throws it out). May leave the calling thread an unpark permit, which a
     * caller that parks in a loop tolerates. Only the direction's own thread calls this.
     */
    public void exerciseBranches() {
        if (!tryLock()) {
            return;
        }
        tryLock(); // held: fails
        waiter = Thread.currentThread();
        unlock(); // with a waiter: unparks this thread
        waiter = null;
        if (tryLock()) {
            unlock();
        }
    }

    /** Releases the lock and wakes the direction's own thread if it waits for it. */
    public void unlock() {
        held.set(false);
        Thread w = waiter;
        if (w != null) {
            LockSupport.unpark(w);
        }
    }
}
