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

    /** Releases the lock and wakes the direction's own thread if it waits for it. */
    public void unlock() {
        held.set(false);
        Thread w = waiter;
        if (w != null) {
            LockSupport.unpark(w);
        }
    }
}
