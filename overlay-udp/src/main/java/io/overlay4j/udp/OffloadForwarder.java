package io.overlay4j.udp;

import static java.util.Objects.requireNonNull;

import io.overlay4j.DropReason;
import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseEvent;
import io.overlay4j.TrafficStats;
import io.overlay4j.TunDevice;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.internal.IcmpUnreachable;
import io.overlay4j.udp.internal.Ipv4Header;
import io.overlay4j.udp.internal.RateLimitedErrorLogger;
import io.overlay4j.udp.internal.TcpCoalescer;
import io.overlay4j.udp.internal.TcpSegmenter;
import io.overlay4j.udp.internal.TrafficCounters;
import io.overlay4j.udp.internal.VirtioNetHeader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fast data plane: like {@link Forwarder}, one thread per direction, but with segmentation offloads on both
 * sides, while every UDP datagram still carries exactly one complete inner IPv4 packet no larger than the TUN MTU
 * (flannel's wire format, so plain flannel peers keep working).
 *
 * <p>Egress: a read from a virtio-header TUN returns up to 64 KiB of one TCP (or UDP) flow; it is split in userspace
 * into MTU-sized IPv4 packets with full checksums ({@link TcpSegmenter}) and sent to the peer with UDP GSO, 44
 * datagrams per {@code sendmsg}. Ingress: one {@code recvmsg} with UDP GRO returns up to 64 datagrams of one sender;
 * each is decapsulated and checked as usual, then the packets of one TCP flow are merged again
 * ({@link TcpCoalescer}) and written to the TUN as one super-packet. A TUN without virtio headers (the kernel refused
 * the offloads) is served packet by packet through the same socket, so the two sides fall back independently.
 *
 * <p>Ownership: the forwarder owns neither the TUN device nor the socket; its owner closes them after {@link #close()},
 * which ends the threads (see {@link #awaitTermination}). Nothing is allocated per packet.
 */
final class OffloadForwarder implements DataPlane {
    private static final Logger LOG = LoggerFactory.getLogger(OffloadForwarder.class);
    private static final int VNET = VirtioNetHeader.LENGTH;
    /** Room for the largest TUN read: a virtio header and a 64 KiB packet. */
    private static final int FRAME_CAPACITY = VNET + TcpSegmenter.MAX_PACKET;
    /** Room for the segments of one super-packet: 64 KiB of payload in segments of at least 576 bytes. */
    private static final int SEGMENTS_CAPACITY = 2 * TcpSegmenter.MAX_PACKET;
    /** Receives drained without waiting before the coalesced packets are written (bounds the added latency). */
    private static final int MAX_DRAIN = 7;

    private final TunDevice tun;
    private final boolean vnet;
    private final UdpSocket socket;
    private final Encapsulator encapsulator;
    private final int port;
    private final int mtu;
    private final int icmpSource;
    private final IngressCheck ingressCheck;
    private final Consumer<Throwable> errorHandler;
    private final TrafficCounters egress = new TrafficCounters();
    private final TrafficCounters ingress = new TrafficCounters();
    private volatile PeerTable peers = PeerTable.empty();
    private volatile boolean running;
    private Thread egressThread;
    private Thread ingressThread;

    OffloadForwarder(TunDevice tun, UdpSocket socket, Encapsulator encapsulator, int port, int mtu,
                     Ipv4Prefix ownSubnet, Ipv4Prefix network, boolean sourceCheck, Consumer<Throwable> errorHandler) {
        this.tun = requireNonNull(tun, "tun");
        this.vnet = tun.vnetHeader();
        this.socket = requireNonNull(socket, "socket");
        this.encapsulator = requireNonNull(encapsulator, "encapsulator");
        this.port = port;
        this.mtu = mtu;
        this.icmpSource = ownSubnet.networkInt();
        this.ingressCheck = new IngressCheck(encapsulator, mtu, network, sourceCheck);
        this.errorHandler = errorHandler != null ? errorHandler : new RateLimitedErrorLogger(LOG, "udp offload path " + tun.name(), 1, TimeUnit.SECONDS);
    }

    /** Whether the TUN side runs with virtio headers (TSO reads, coalesced writes). */
    boolean vnetHeader() {
        return vnet;
    }

    /** Starts both threads from the calling thread, so they inherit its network namespace. */
    void start() {
        running = true;
        egressThread = new Thread(this::runEgress, "overlay4j-egress-" + tun.name());
        ingressThread = new Thread(this::runIngress, "overlay4j-ingress-" + tun.name());
        egressThread.setDaemon(true);
        ingressThread.setDaemon(true);
        egressThread.start();
        ingressThread.start();
    }

    @Override
    public void peersChanged(List<LeaseEvent> events) {
        peers = peers.apply(events, port);
    }

    @Override
    public void resetPeers(Collection<Lease> leases) {
        peers = PeerTable.of(leases, port);
    }

    @Override
    public PeerTable peers() {
        return peers;
    }

    @Override
    public TrafficStats stats() {
        return TrafficCounters.snapshot(egress, ingress);
    }

    /** Tells the threads to stop; they end when the owner closes the TUN device and the socket. */
    @Override
    public void close() {
        running = false;
    }

    /** Waits for both threads to end (after the owner closed the TUN device and the socket). */
    @Override
    public boolean awaitTermination(long timeout, TimeUnit unit) throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        for (Thread t : new Thread[] {egressThread, ingressThread}) {
            if (t != null) {
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                t.join(Math.max(1, left));
                if (t.isAlive()) {
                    return false;
                }
            }
        }
        return true;
    }

    private void report(Throwable t) {
        try {
            errorHandler.accept(t);
        } catch (Throwable ignored) {
            // The data plane outlives a broken error handler.
        }
    }

    // ---- egress: TUN -> UDP ------------------------------------------------------------------------------------

    private void runEgress() {
        ByteBuffer frame = ByteBuffer.allocateDirect(FRAME_CAPACITY).order(ByteOrder.BIG_ENDIAN);
        ByteBuffer segments = ByteBuffer.allocateDirect(SEGMENTS_CAPACITY).order(ByteOrder.BIG_ENDIAN);
        ByteBuffer icmp = ByteBuffer.allocateDirect(VNET + IcmpUnreachable.MAX_LENGTH).order(ByteOrder.BIG_ENDIAN);
        TcpSegmenter segmenter = new TcpSegmenter(mtu);
        int start = vnet ? VNET : 0;
        while (running) {
            try {
                frame.clear();
                int n = tun.read(frame);
                if (n <= start) {
                    egress.drop(DropReason.RUNT);
                    continue;
                }
                egressFrame(frame, n, start, segments, icmp, segmenter);
            } catch (ClosedChannelException e) {
                break;
            } catch (Exception e) {
                if (!running || !tun.isOpen()) {
                    break;
                }
                report(e);
            }
        }
    }

    private void egressFrame(ByteBuffer frame, int n, int start, ByteBuffer segments, ByteBuffer icmp,
                             TcpSegmenter segmenter) throws IOException {
        int length = n - start;
        if (length < Ipv4Header.MIN_LENGTH) {
            egress.drop(DropReason.RUNT);
            return;
        }
        if (Ipv4Header.version(frame, start) != 4) {
            egress.drop(DropReason.NOT_IPV4);
            return;
        }
        Peer peer = peers.lookup(Ipv4Header.destination(frame, start));
        if (peer == null) {
            egress.drop(DropReason.NO_ROUTE);
            replyUnreachable(frame, start, length, icmp);
            return;
        }
        int gso = vnet ? VirtioNetHeader.gsoType(frame, 0) & ~VirtioNetHeader.GSO_ECN : VirtioNetHeader.GSO_NONE;
        if (gso == VirtioNetHeader.GSO_NONE) {
            if (vnet) {
                // Finish a partial checksum (NEEDS_CSUM): the peer gets a complete packet.
                segments.clear();
                TcpSegmenter.Result r = segmenter.segment(frame, 0, n, segments, 0);
                if (r.isDrop()) {
                    egress.drop(r.dropReason());
                    return;
                }
            }
            frame.limit(n).position(start);
            DropReason reason = encapsulator.encapsulate(frame, mtu);
            if (reason != null) {
                egress.drop(reason);
                return;
            }
            int inner = frame.remaining();
            socket.send(frame, peer.address(), peer.port());
            egress.packet(inner);
            return;
        }
        // A super-packet: flannel decrements the TTL once per inner packet; do it on the shared header first.
        int ttl = Ipv4Header.ttl(frame, start);
        if (ttl <= 1) {
            egress.drop(DropReason.TTL_EXPIRED);
            return;
        }
        Ipv4Header.decrementTtl(frame, start);
        segments.clear(); // the segmenter writes up to the limit, which the last send moved
        TcpSegmenter.Result r = segmenter.segment(frame, 0, n, segments, 0);
        if (r.isDrop()) {
            egress.drop(r.dropReason());
            return;
        }
        int count = segmenter.segmentCount();
        int size = segmenter.segmentLength();
        int total = segmenter.outputLength();
        int perSend = Math.min(UdpSocket.MAX_SEGMENTS, UdpSocket.MAX_PAYLOAD / size);
        int offset = 0;
        while (offset < total) {
            int bytes = Math.min(perSend * size, total - offset);
            segments.limit(offset + bytes).position(offset);
            socket.sendSegmented(segments, size, peer.address(), peer.port());
            offset += bytes;
        }
        egress.packets(count, total);
    }

    private void replyUnreachable(ByteBuffer frame, int start, int length, ByteBuffer icmp) throws IOException {
        int at = vnet ? VNET : 0;
        int n = IcmpUnreachable.write(frame, start, length, icmp, at, icmpSource);
        if (n == 0) {
            return;
        }
        if (vnet) {
            VirtioNetHeader.clear(icmp, 0);
        }
        icmp.limit(at + n).position(0);
        tun.write(icmp);
        egress.icmpSent();
    }

    // ---- ingress: UDP -> TUN -----------------------------------------------------------------------------------

    private void runIngress() {
        ByteBuffer batch = ByteBuffer.allocateDirect(UdpSocket.MAX_GRO_BYTES + 1).order(ByteOrder.BIG_ENDIAN);
        ByteBuffer view = batch.duplicate().order(ByteOrder.BIG_ENDIAN);
        UdpSocket.Received info = new UdpSocket.Received();
        TcpCoalescer coalescer = vnet ? TcpCoalescer.withDefaults() : null;
        TcpCoalescer.Sink toTun = this::writeFrame;
        while (running) {
            try {
                batch.clear();
                int n = socket.receive(batch, info);
                if (!running) {
                    break;
                }
                ingestBatch(batch, view, n, info, coalescer, toTun);
                if (coalescer != null) {
                    // Drain what has already arrived before writing: a flow's next GSO batch (a 64 KiB super-packet
                    // leaves the sender as 44 + 2 datagrams) merges into the same TUN write.
                    for (int more = 0; more < MAX_DRAIN; more++) {
                        batch.clear();
                        int m = socket.tryReceive(batch, info);
                        if (m < 0) {
                            break;
                        }
                        ingestBatch(batch, view, m, info, coalescer, toTun);
                    }
                    if (coalescer.pendingPackets() > 0) {
                        coalescer.flush(toTun);
                    }
                }
            } catch (ClosedChannelException e) {
                break;
            } catch (Exception e) {
                if (!running || !socket.isOpen()) {
                    break;
                }
                report(e);
            }
        }
    }

    /** Decapsulates and checks each datagram of one receive and writes it, or offers it to the coalescer. */
    private void ingestBatch(ByteBuffer batch, ByteBuffer view, int n, UdpSocket.Received info,
                             TcpCoalescer coalescer, TcpCoalescer.Sink toTun) {
        int size = Math.max(1, info.segmentSize());
        for (int off = 0; off < n; off += size) {
            view.limit(Math.min(off + size, n)).position(off);
            DropReason reason = ingressCheck.check(view);
            if (reason != null) {
                ingress.drop(reason);
                continue;
            }
            int at = view.position();
            int len = view.remaining();
            if (coalescer == null) {
                if (writePacket(view)) {
                    ingress.packet(len);
                }
                continue;
            }
            if (!coalescer.offer(batch, at, len)) {
                coalescer.flush(toTun);
                coalescer.offer(batch, at, len);
            }
            ingress.packet(len);
        }
    }

    private boolean writePacket(ByteBuffer packet) {
        try {
            tun.write(packet);
            return true;
        } catch (IOException e) {
            report(e);
            ingress.drop(DropReason.TUN_WRITE_FAILED);
            return false;
        }
    }

    private void writeFrame(ByteBuffer buf, int offset, int length) {
        buf.limit(offset + length).position(offset);
        try {
            tun.write(buf);
        } catch (IOException e) {
            report(e);
            ingress.drop(DropReason.TUN_WRITE_FAILED);
        }
    }
}
