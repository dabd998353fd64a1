package io.overlay4j.udp.internal;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.TunDevice;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.Peer;
import io.overlay4j.udp.PeerTable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * The egress half of the data plane, TUN → network, for one TUN queue: {@link #step()} reads once from the TUN and
 * handles what it read, in one order for every kind of device: validate the inner IPv4 packet, look up the peer that
 * owns its destination (none: {@link DropReason#NO_ROUTE} and an ICMP net-unreachable written back into the TUN, as
 * flannel does), encapsulate, send.
 *
 * <p>Capabilities come from the devices as they were opened. A TUN with virtio headers hands over TCP/UDP
 * super-packets of up to 64 KiB: they are split into MTU-sized packets ({@link TcpSegmenter}), each with room for the
 * encapsulation's header in front, each encapsulated for the peer, and sent with segmented sends (UDP GSO where the
 * socket has it, else the socket's own fallback); single packets have their partial checksum finished. A plain TUN
 * hands over single packets. Every datagram on the wire carries one complete inner packet either way.
 *
 * <p>Counting: every packet read is either sent (counted as forwarded with its inner bytes, per segment for a
 * super-packet) or dropped under exactly one reason, failed sends as {@link DropReason#SEND_FAILED} (reported to the
 * error handler too); a sent packet counts for its peer too ({@link PeerCounters}). Nothing is allocated per packet: the buffers are allocated once, here. Not thread-safe: one
 * thread calls {@link #step()}.
 */
public final class EgressPath {
    private static final int MAX_PACKET = 65535;

    private final TunDevice tun;
    private final boolean vnet;
    private final int vnetLength;
    private final DatagramPort port;
    private final Encapsulator encapsulator;
    private final int headroom;
    private final int mtu;
    private final int icmpSource;
    private final AtomicReference<PeerTable> peers;
    private final TrafficCounters counters;
    private final Consumer<Throwable> errors;
    private final TcpSegmenter segmenter;
    private final int readAt;
    private final ByteBuffer frame;
    private final ByteBuffer segments;
    private final ByteBuffer icmp;
    /** Single datagrams for one peer, back to back, all {@link #runLength} long but maybe the last: one GSO send. */
    private final ByteBuffer run;
    private Peer runPeer;
    private int runCount;
    private int runLength;
    private int runBytes;
    private long runInner;
    /** The last datagram of the run was shorter than the others: a GSO send can carry nothing after it. */
    private boolean runClosed;
    /** Whether single packets are collected into a run (in {@link #drain}) rather than sent one by one. */
    private boolean batching;

    /**
     * An egress path; allocates its buffers (about 200 KiB of direct memory).
     *
     * @param icmpSource the source address of ICMP replies (the node's own subnet's network address), network order
     * @param peers      the current peer table, read once per packet
     * @param errors     receives unexpected I/O errors (a failed send); must not block or throw
     */
    public EgressPath(TunDevice tun, DatagramPort port, Encapsulator encapsulator, int mtu, int icmpSource,
                      AtomicReference<PeerTable> peers, TrafficCounters counters, Consumer<Throwable> errors) {
        this.tun = tun;
        this.vnet = tun.vnetHeader();
        this.vnetLength = vnet ? VirtioNetHeader.LENGTH : 0;
        this.port = port;
        this.encapsulator = encapsulator;
        this.headroom = encapsulator.headroom();
        this.mtu = mtu;
        this.icmpSource = icmpSource;
        this.peers = peers;
        this.counters = counters;
        this.errors = errors;
        this.segmenter = new TcpSegmenter(mtu);
        this.readAt = headroom;
        this.frame = ByteBuffer.allocateDirect(headroom + VirtioNetHeader.LENGTH + MAX_PACKET);
        this.segments = ByteBuffer.allocateDirect(2 * MAX_PACKET + UdpSocket.MAX_SEGMENTS * headroom);
        this.icmp = ByteBuffer.allocateDirect(VirtioNetHeader.LENGTH + IcmpUnreachable.MAX_LENGTH);
        this.run = ByteBuffer.allocateDirect(UdpSocket.MAX_PAYLOAD);
    }

    /** Whether the TUN side runs with virtio headers (super-packet reads). */
    public boolean vnetHeader() {
        return vnet;
    }

    /**
     * Reads one packet (or super-packet) from the TUN, blocking until one arrives, and sends or drops it.
     *
     * @return the number of datagrams sent
     * @throws ClosedChannelException if the TUN device or the port is closed: the loop ends
     * @throws IOException            if the TUN read fails
     */
    public int step() throws IOException {
        ByteBuffer f = frame;
        f.limit(f.capacity()).position(readAt);
        int n = tun.read(f);
        return handle(n);
    }

    /**
     * Reads and handles the packets already queued on the TUN, at most {@code maxReads}, without waiting: for a
     * {@linkplain TunDevice#pollable() pollable} device, whose reader waits with {@link TunDevice#awaitReadable()}.
     * Consecutive single packets for the same peer whose datagrams have the same length (the last may be shorter)
     * leave together, with one segmented send (UDP GSO: one system call for up to 64 datagrams) when the run ends:
     * at another peer or length, a super-packet, 64 datagrams or 64 KiB, or the end of the drain. Order is kept.
     *
     * @return the number of packets (or super-packets) read; 0 if none was queued
     * @throws ClosedChannelException if the TUN device or the port is closed: the loop ends
     * @throws IOException            if a TUN read fails
     */
    public int drain(int maxReads) throws IOException {
        int reads = 0;
        ByteBuffer f = frame;
        batching = true;
        try {
            while (reads < maxReads) {
                f.limit(f.capacity()).position(readAt);
                int n = tun.tryRead(f);
                if (n < 0) {
                    break;
                }
                reads++;
                handle(n);
            }
        } finally {
            batching = false;
            flushRun();
        }
        return reads;
    }

    private int handle(int n) throws IOException {
        int start = readAt + vnetLength;
        int length = n - vnetLength;
        if (length <= 0) {
            counters.drop(DropReason.RUNT);
            return 0;
        }
        int gso = vnet ? VirtioNetHeader.gsoType(frame, readAt) & ~VirtioNetHeader.GSO_ECN : VirtioNetHeader.GSO_NONE;
        frame.limit(start + length).position(start);
        DropReason reason = Ipv4Header.validate(frame, gso == VirtioNetHeader.GSO_NONE ? mtu : MAX_PACKET);
        if (reason != null) {
            counters.drop(reason);
            return 0;
        }
        length = frame.limit() - start;
        Peer peer = peers.get().lookup(Ipv4Header.destination(frame, start));
        if (peer == null) {
            counters.drop(DropReason.NO_ROUTE);
            replyUnreachable(start, length);
            return 0;
        }
        if (gso == VirtioNetHeader.GSO_NONE) {
            return sendOne(peer, start, length);
        }
        return sendSegments(peer, length);
    }

    private int sendOne(Peer peer, int start, int length) throws IOException {
        if (vnet && (VirtioNetHeader.flags(frame, readAt) & VirtioNetHeader.FLAG_NEEDS_CSUM) != 0) {
            // Finish the partial checksum in place: the peer gets a complete packet.
            segments.clear();
            TcpSegmenter.Result r = segmenter.segment(frame, readAt, vnetLength + length, segments, 0);
            if (r.isDrop()) {
                counters.drop(r.dropReason());
                return 0;
            }
        }
        frame.limit(start + length).position(start);
        DropReason reason = encapsulator.encapsulate(frame, peer.context(), mtu);
        if (reason != null) {
            counters.drop(reason);
            return 0;
        }
        if (batching) {
            append(peer, length);
            return 1;
        }
        try {
            port.send(frame, peer.address(), peer.port());
        } catch (ClosedChannelException e) {
            throw e;
        } catch (IOException e) {
            // Report first: whoever sees the drop counted (release/acquire) also sees the report.
            report(e);
            counters.drop(DropReason.SEND_FAILED);
            return 0;
        }
        counters.packet(length);
        PeerCounters.of(peer).sent(length);
        return 1;
    }

    /** Appends the encapsulated datagram in {@code frame} to the run (sending the run first if it cannot take it). */
    private void append(Peer peer, int innerLength) throws IOException {
        int length = frame.remaining();
        if (runCount > 0 && (peer != runPeer || runClosed || length > runLength || runCount == UdpSocket.MAX_SEGMENTS
                || runBytes + length > UdpSocket.MAX_PAYLOAD)) {
            flushRun();
        }
        if (runCount == 0) {
            runPeer = peer;
            runLength = length;
        }
        run.limit(run.capacity()).position(runBytes);
        run.put(frame);
        runBytes += length;
        runCount++;
        runInner += innerLength;
        if (length < runLength) {
            runClosed = true;
        }
    }

    /** Sends the pending run, if any: one datagram with {@code send}, several with one segmented send. */
    private void flushRun() throws IOException {
        int count = runCount;
        if (count == 0) {
            return;
        }
        Peer peer = runPeer;
        long inner = runInner;
        run.limit(runBytes).position(0);
        runCount = 0;
        runBytes = 0;
        runInner = 0;
        runClosed = false;
        runPeer = null;
        try {
            if (count == 1) {
                port.send(run, peer.address(), peer.port());
            } else {
                port.sendSegmented(run, runLength, peer.address(), peer.port());
            }
        } catch (ClosedChannelException e) {
            throw e;
        } catch (IOException e) {
            report(e);
            counters.drops(DropReason.SEND_FAILED, count);
            return;
        }
        counters.packets(count, inner);
        PeerCounters.of(peer).sent(count, inner);
    }

    private int sendSegments(Peer peer, int length) throws IOException {
        flushRun(); // the run's packets were read before this one
        segments.clear(); // the segmenter writes up to the limit, which the last send moved
        TcpSegmenter.Result r = segmenter.segment(frame, readAt, vnetLength + length, segments, 0, headroom);
        if (r.isDrop()) {
            counters.drop(r.dropReason());
            return 0;
        }
        int count = segmenter.segmentCount();
        int segmentLength = segmenter.segmentLength();
        int lastLength = segmenter.lastSegmentLength();
        int stride = headroom + segmentLength;
        Object context = peer.context();
        int ready = count;
        for (int i = 0; i < count; i++) {
            int at = headroom + i * stride;
            int end = at + (i == count - 1 ? lastLength : segmentLength);
            segments.limit(end).position(at);
            DropReason reason = encapsulator.encapsulate(segments, context, mtu);
            if (reason != null) {
                // The encapsulator's verdict depends only on the shared headers: the rest would fail alike.
                counters.drops(reason, count - i);
                ready = i;
                break;
            }
            if (segments.position() != at - headroom || segments.limit() != end) {
                throw new IllegalStateException(encapsulator + " must prepend exactly " + headroom + " bytes");
            }
        }
        int sent = 0;
        int offset = 0;
        int total = ready == count ? (count - 1) * stride + headroom + lastLength : ready * stride;
        int perSend = Math.min(UdpSocket.MAX_SEGMENTS, UdpSocket.MAX_PAYLOAD / stride);
        while (sent < ready) {
            int bytes = Math.min(perSend * stride, total - offset);
            int datagrams = (bytes + stride - 1) / stride;
            segments.limit(offset + bytes).position(offset);
            try {
                port.sendSegmented(segments, stride, peer.address(), peer.port());
            } catch (ClosedChannelException e) {
                throw e;
            } catch (IOException e) {
                report(e);
                counters.drops(DropReason.SEND_FAILED, ready - sent);
                break;
            }
            sent += datagrams;
            offset += bytes;
        }
        if (sent > 0) {
            long inner = sent == count ? (long) (count - 1) * segmentLength + lastLength
                    : (long) sent * segmentLength;
            counters.packets(sent, inner);
            PeerCounters.of(peer).sent(sent, inner);
        }
        return sent;
    }

    private void replyUnreachable(int start, int length) throws IOException {
        int at = vnetLength;
        int n = IcmpUnreachable.write(frame, start, length, icmp, at, icmpSource);
        if (n == 0) {
            return;
        }
        if (vnet) {
            VirtioNetHeader.clear(icmp, 0);
        }
        icmp.limit(at + n).position(0);
        try {
            tun.write(icmp);
            counters.icmpSent();
        } catch (ClosedChannelException e) {
            throw e;
        } catch (IOException e) {
            report(e);
        }
    }

    private void report(Throwable t) {
        try {
            errors.accept(t);
        } catch (Throwable ignored) {
            // An error handler that throws must not end the data plane.
        }
    }
}
