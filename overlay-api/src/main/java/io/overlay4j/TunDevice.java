package io.overlay4j;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A layer-3 TUN device: each {@link #read} returns one raw IP packet the kernel routed to the device, each
 * {@link #write} injects one IP packet into the kernel's receive path.
 *
 * <p>{@code read} and {@code tryRead} are called by one thread at a time; {@code write} may be called concurrently by
 * several threads (each call injects one whole packet) and concurrently with reads. Buffers are the caller's: the
 * device never retains or releases them. Direct buffers avoid a copy.
 */
public interface TunDevice extends AutoCloseable {

    /** The kernel's name for the device, e.g. {@code flannel0}. */
    String name();

    /** The kernel's interface index. */
    int index();

    /** The device MTU: the largest packet {@link #read} returns and {@link #write} accepts. */
    int mtu();

    /**
     * Reads one packet into {@code dst} at its position, blocking until one arrives, and advances the position by its
     * length. {@code dst} should have at least {@link #mtu()} bytes remaining: the kernel truncates longer packets.
     *
     * @return the packet length
     * @throws java.nio.channels.ClosedChannelException if the device is or becomes closed
     * @throws IOException                              on a kernel error
     */
    int read(ByteBuffer dst) throws IOException;

    /**
     * Whether {@link #tryRead} and {@link #awaitReadable} work on this device: then a reader can wait for a packet
     * without reading it and read without waiting, so that several threads can take turns reading (one at a time).
     * False by default.
     */
    default boolean pollable() {
        return false;
    }

    /**
     * Reads one packet as {@link #read} does, but only if one is already queued: returns -1 at once, leaving
     * {@code dst} alone, if none is. Only on a {@link #pollable()} device.
     *
     * @return the packet length, or -1 if no packet was queued
     * @throws java.nio.channels.ClosedChannelException if the device is closed
     * @throws UnsupportedOperationException            if the device is not pollable
     */
    default int tryRead(ByteBuffer dst) throws IOException {
        throw new UnsupportedOperationException(name() + " cannot read without waiting");
    }

    /**
     * Waits until a packet is queued (a {@link #tryRead} would return one) or the device is closed, without reading
     * anything; may also return early. Only on a {@link #pollable()} device.
     *
     * @throws java.nio.channels.ClosedChannelException if the device is or becomes closed
     * @throws UnsupportedOperationException            if the device is not pollable
     */
    default void awaitReadable() throws IOException {
        throw new UnsupportedOperationException(name() + " cannot wait for packets without reading them");
    }

    /**
     * Writes the remaining bytes of {@code src} as one packet and advances its position to its limit.
     *
     * @return the number of bytes written
     * @throws java.nio.channels.ClosedChannelException if the device is closed
     * @throws IOException                              on a kernel error (for example EINVAL for a malformed packet)
     */
    int write(ByteBuffer src) throws IOException;

    /**
     * Whether every read and write carries a 10-byte {@code virtio_net_hdr} in front of the packet (a device opened
     * with {@link TunOptions#offloads()} that the kernel granted them): reads may then return TCP/UDP super-packets of
     * up to 64 KiB, and writes may inject them. False for plain devices, where each read and write is one IP packet.
     */
    default boolean vnetHeader() {
        return false;
    }

    /** Whether the device is open. */
    boolean isOpen();

    /** Wakes a blocked reader, closes the file descriptor and so removes the (non-persistent) device. Idempotent. */
    @Override
    void close();

    /** Opens TUN devices; lets tests and benchmarks plug in a device that is not the kernel's. */
    @FunctionalInterface
    interface Factory {
        /** Opens a device with the given options. */
        TunDevice open(TunOptions options) throws IOException;
    }
}
