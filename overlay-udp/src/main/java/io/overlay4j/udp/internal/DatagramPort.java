package io.overlay4j.udp.internal;

import io.overlay4j.tun.UdpSocket;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The one datagram port the data plane sends and receives through: {@link UdpSocket}'s calls and offload
 * capabilities, behind an interface so that benchmarks can put an in-memory port under the real loop code. The
 * contracts are {@link UdpSocket}'s: direct buffers, nothing allocated per call, the position advanced, and
 * {@link java.nio.channels.ClosedChannelException} (or its subclass for an asynchronous close) once the port is
 * closed.
 */
public interface DatagramPort {
    /** Whether receives may return GRO-coalesced runs ({@link UdpSocket#groEnabled()}). */
    boolean groEnabled();

    /** Whether segmented sends still use GSO ({@link UdpSocket#gsoSupported()}); informational. */
    boolean gsoSupported();

    /** {@link UdpSocket#send}. */
    void send(ByteBuffer payload, int address, int port) throws IOException;

    /** {@link UdpSocket#sendSegmented}: falls back by itself when the kernel refuses GSO. */
    void sendSegmented(ByteBuffer payload, int segmentSize, int address, int port) throws IOException;

    /** {@link UdpSocket#receive}: waits. */
    int receive(ByteBuffer dst, UdpSocket.Received info) throws IOException;

    /** {@link UdpSocket#tryReceive}: -1 at once if nothing is queued. */
    int tryReceive(ByteBuffer dst, UdpSocket.Received info) throws IOException;

    /**
     * {@link UdpSocket#awaitReadable}: waits until a {@link #tryReceive} would find a datagram (or the port closes).
     * The default returns at once, for ports whose receives never wait.
     */
    default void awaitReadable() throws IOException {
    }

    /** Whether the port is open. */
    boolean isOpen();

    /** The port of a {@link UdpSocket}. */
    static DatagramPort of(UdpSocket socket) {
        return new DatagramPort() {
            @Override
            public boolean groEnabled() {
                return socket.groEnabled();
            }

            @Override
            public boolean gsoSupported() {
                return socket.gsoSupported();
            }

            @Override
            public void send(ByteBuffer payload, int address, int port) throws IOException {
                socket.send(payload, address, port);
            }

            @Override
            public void sendSegmented(ByteBuffer payload, int segmentSize, int address, int port) throws IOException {
                socket.sendSegmented(payload, segmentSize, address, port);
            }

            @Override
            public int receive(ByteBuffer dst, UdpSocket.Received info) throws IOException {
                return socket.receive(dst, info);
            }

            @Override
            public int tryReceive(ByteBuffer dst, UdpSocket.Received info) throws IOException {
                return socket.tryReceive(dst, info);
            }

            @Override
            public void awaitReadable() throws IOException {
                socket.awaitReadable();
            }

            @Override
            public boolean isOpen() {
                return socket.isOpen();
            }

            @Override
            public String toString() {
                return socket.toString();
            }
        };
    }
}
