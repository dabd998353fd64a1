package io.overlay4j.udp.testing;

import io.overlay4j.ErrnoException;
import io.overlay4j.TunDevice;
import io.overlay4j.TunOptions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A {@link TunDevice} without a kernel: packets {@link #inject injected} by a test are what {@link #read} returns (as
 * if the kernel routed them to the device), and packets the data plane {@link #write writes} are queued for the test
 * to {@link #takeWritten take}. {@link #read} blocks until a packet arrives or {@link #close()} wakes it with a
 * {@link ClosedChannelException}, like the kernel device. {@link #pollable()} by default, like the kernel device:
 * {@link #tryRead} and {@link #awaitReadable} work ({@link #pollable(boolean)} turns that off, to test the readers of
 * devices that cannot). Thread-safe: any number of readers, writers and injectors.
 */
public final class InMemoryTunDevice implements TunDevice {
    private static final byte[] CLOSED = new byte[0];
    private static final byte[] WAKE = new byte[0];
    private static final AtomicInteger NEXT_INDEX = new AtomicInteger(1000);

    private final String name;
    private final int index;
    private final int mtu;
    private final boolean vnetHeader;
    private volatile int refusedGsoType = -1;
    private final BlockingQueue<byte[]> toRead = new LinkedBlockingQueue<>();
    private final BlockingQueue<byte[]> written = new LinkedBlockingQueue<>();
    private final AtomicInteger writes = new AtomicInteger();
    private final AtomicLong writtenBytes = new AtomicLong();
    private final AtomicLong repeatsLeft = new AtomicLong();
    private volatile byte[] repeatPacket;
    private volatile boolean discardWrites;
    private volatile boolean open = true;
    private volatile IOException writeFailure;
    private volatile boolean pollable = true;
    /** Notified whenever something is queued for reading or the device closes. */
    private final Object readable = new Object();

    /** A plain device named {@code name} with this MTU. */
    public InMemoryTunDevice(String name, int mtu) {
        this(name, mtu, false);
    }

    /**
     * A device named {@code name} with this MTU, with or without virtio-net headers: with them, {@link #inject} puts
     * an all-zero 10-byte header in front of each packet, {@link #injectFrame} takes the header from the test, and
     * written frames are recorded with their header, as the data plane wrote them.
     */
    public InMemoryTunDevice(String name, int mtu, boolean vnetHeader) {
        this.name = name;
        this.mtu = mtu;
        this.vnetHeader = vnetHeader;
        this.index = NEXT_INDEX.getAndIncrement();
    }

    @Override
    public boolean vnetHeader() {
        return vnetHeader;
    }

    /** Queues a frame for {@link #read} exactly as given (with its virtio header, on a device that has them). */
    public void injectFrame(byte[] frame) {
        toRead.add(frame.clone());
        signalReadable();
    }

    private void signalReadable() {
        synchronized (readable) {
            readable.notifyAll();
        }
    }

    /** Whether {@link #tryRead} and {@link #awaitReadable} are offered; default true. */
    public void pollable(boolean pollable) {
        this.pollable = pollable;
    }

    @Override
    public boolean pollable() {
        return pollable;
    }

    @Override
    public int tryRead(ByteBuffer dst) throws IOException {
        if (!pollable) {
            return TunDevice.super.tryRead(dst);
        }
        while (true) {
            if (!open) {
                throw new ClosedChannelException();
            }
            long left = repeatsLeft.get();
            if (left > 0) {
                if (repeatsLeft.compareAndSet(left, left - 1)) {
                    return copy(repeatPacket, dst);
                }
                continue;
            }
            byte[] packet = toRead.poll();
            if (packet == null) {
                return -1;
            }
            if (packet == CLOSED) {
                toRead.add(CLOSED);
                throw new ClosedChannelException();
            }
            if (packet != WAKE) {
                return copy(packet, dst);
            }
        }
    }

    @Override
    public void awaitReadable() throws IOException {
        if (!pollable) {
            TunDevice.super.awaitReadable();
        }
        synchronized (readable) {
            while (open && toRead.isEmpty() && repeatsLeft.get() <= 0) {
                try {
                    readable.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.io.InterruptedIOException("interrupted in awaitReadable");
                }
            }
        }
        if (!open) {
            throw new ClosedChannelException();
        }
    }

    /**
     * A factory that numbers {@code %d} templates from 0 per factory (as the kernel does for the first free index) and
     * records the devices it opened.
     */
    public static Factory factory() {
        return new Factory();
    }

    /** Queues a packet for {@link #read} (the kernel routing a packet to the device). */
    public void inject(byte[] packet) {
        if (vnetHeader) {
            byte[] frame = new byte[10 + packet.length];
            System.arraycopy(packet, 0, frame, 10, packet.length);
            toRead.add(frame);
        } else {
            toRead.add(packet.clone());
        }
        signalReadable();
    }

    /**
     * Makes the next {@code times} reads return copies of {@code packet}, ahead of injected packets, without allocating
     * or queueing anything per read (for benchmarks and allocation tests).
     */
    public void injectRepeated(byte[] packet, long times) {
        repeatPacket = packet.clone();
        repeatsLeft.set(times);
        toRead.add(WAKE);
        signalReadable();
    }

    /** Whether writes are only counted (no copy, no queue: allocation-free), instead of queued for the test. */
    public void discardWrites(boolean discard) {
        this.discardWrites = discard;
    }

    /** The bytes of all successful writes so far. */
    public long writtenBytes() {
        return writtenBytes.get();
    }

    /** The next packet written by the data plane, waiting up to the timeout; {@code null} if none came. */
    public byte[] takeWritten(long timeout, TimeUnit unit) throws InterruptedException {
        return written.poll(timeout, unit);
    }

    /** The packets written and not yet taken. */
    public int writtenPending() {
        return written.size();
    }

    /** The number of successful writes so far. */
    public int writes() {
        return writes.get();
    }

    /**
     * Makes every following write of a frame with this virtio GSO type (e.g. 5, {@code GSO_UDP_L4}) fail with
     * {@code EINVAL}, as a kernel that does not know the type refuses it; -1 accepts every type again.
     */
    public void refuseGsoType(int gsoType) {
        this.refusedGsoType = gsoType;
    }

    /** Makes every following write fail with this exception ({@code null} to stop failing). */
    public void failWrites(IOException failure) {
        this.writeFailure = failure;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int index() {
        return index;
    }

    @Override
    public int mtu() {
        return mtu;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        while (true) {
            if (!open) {
                throw new ClosedChannelException();
            }
            long left = repeatsLeft.get();
            if (left > 0) {
                if (repeatsLeft.compareAndSet(left, left - 1)) {
                    return copy(repeatPacket, dst);
                }
                continue;
            }
            byte[] packet;
            try {
                packet = toRead.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted in read");
            }
            if (packet == CLOSED) {
                toRead.add(CLOSED);
                throw new ClosedChannelException();
            }
            if (packet != WAKE) {
                return copy(packet, dst);
            }
        }
    }

    private static int copy(byte[] packet, ByteBuffer dst) {
        // Like the kernel: a packet longer than the buffer is truncated.
        int n = Math.min(packet.length, dst.remaining());
        dst.put(packet, 0, n);
        return n;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        if (!open) {
            throw new ClosedChannelException();
        }
        IOException failure = writeFailure;
        if (failure != null) {
            throw failure;
        }
        if (vnetHeader && refusedGsoType >= 0 && src.remaining() > 1
                && (src.get(src.position() + 1) & 0x7f) == refusedGsoType) {
            throw new ErrnoException("write(" + name + ")", ErrnoException.EINVAL);
        }
        int n = src.remaining();
        if (discardWrites) {
            src.position(src.limit());
        } else {
            byte[] packet = new byte[n];
            src.get(packet);
            written.add(packet);
        }
        writtenBytes.addAndGet(n);
        writes.incrementAndGet();
        return n;
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public void close() {
        if (open) {
            open = false;
            toRead.add(CLOSED);
            signalReadable();
        }
    }

    @Override
    public String toString() {
        return "InMemoryTunDevice[" + name + ", mtu " + mtu + (open ? "" : ", closed") + "]";
    }

    /** A {@link TunDevice.Factory} of in-memory devices that remembers what it opened. */
    public static final class Factory implements TunDevice.Factory {
        private final AtomicInteger next = new AtomicInteger();
        private final List<InMemoryTunDevice> opened = new CopyOnWriteArrayList<>();
        private volatile IOException openFailure;

        @Override
        public InMemoryTunDevice open(TunOptions options) throws IOException {
            IOException failure = openFailure;
            if (failure != null) {
                throw failure;
            }
            String name = options.name().contains("%d")
                    ? options.name().replace("%d", Integer.toString(next.getAndIncrement())) : options.name();
            InMemoryTunDevice device = new InMemoryTunDevice(name, options.mtu());
            opened.add(device);
            return device;
        }

        /** Makes every following open fail ({@code null} to stop failing). */
        public void failOpens(IOException failure) {
            this.openFailure = failure;
        }

        /** The devices opened so far, in order. */
        public List<InMemoryTunDevice> opened() {
            return opened;
        }
    }
}
