package io.overlay4j.udp.internal;

import io.overlay4j.DropReason;
import io.overlay4j.ErrnoException;
import io.overlay4j.Encapsulator;
import io.overlay4j.Ipv4Prefix;
import io.overlay4j.TunDevice;
import io.overlay4j.tun.UdpSocket;
import io.overlay4j.udp.Peer;
import io.overlay4j.udp.PeerTable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ingress half of the data plane, network → TUN, for one socket and TUN queue: {@link #drain} receives what has
 * already arrived (with GRO possibly several datagrams of one sender per receive) and writes the admitted inner
 * packets to the TUN.
 *
 * <p>Admission, in this order, for every datagram (each of a GRO run on its own); a datagram that fails is dropped,
 * counted under the reason named, and never answered:
 * <ol>
 *   <li>the sender's address (and port, where the encapsulation {@linkplain Encapsulator#fixedSourcePort() fixes
 *   it}) must be a current lease's public address: else {@link DropReason#UNKNOWN_SENDER} (skipped when built with
 *   {@code checkSender} false, for peers behind NAT);</li>
 *   <li>{@link Encapsulator#decapsulate} (for flannel udp this validates and decrements the TTL), then the inner IPv4
 *   packet's own validation (runt, version, header, length, MTU);</li>
 *   <li>the inner source must lie in the subnet of a lease that sender holds (without the sender check: of any
 *   current lease): else {@link DropReason#FOREIGN_SOURCE} if it is outside the overlay network,
 *   {@link DropReason#SPOOFED_SOURCE} if inside;</li>
 *   <li>the inner destination must lie in this node's own subnet (which holds the TUN's address, the subnet's
 *   network address): else {@link DropReason#FOREIGN_DESTINATION}.</li>
 * </ol>
 *
 * <p>A TUN with virtio headers gets the admitted packets of a receive batch coalesced into TCP super-packets
 * ({@link TcpCoalescer}); a plain TUN gets one write per packet. A packet counts as forwarded only once its TUN write
 * succeeded (a merged frame: all of its packets, once); a failed write counts each of its packets as
 * {@link DropReason#TUN_WRITE_FAILED}. An admitted packet counts for its peer ({@link PeerCounters}) when it is
 * admitted, with the time of its receive (one clock read per drain, only if something was admitted) as the peer's
 * last-seen time. Nothing is
 * allocated per packet. Not thread-safe: one thread at a time calls {@link #drain}.
 */
public final class IngressPath {
    private static final Logger LOG = LoggerFactory.getLogger(IngressPath.class);

    private final TunDevice tun;
    private final DatagramPort port;
    private final Encapsulator encapsulator;
    private final int mtu;
    private final int ownNetwork;
    private final int ownMask;
    private final int network;
    private final int networkMask;
    private final boolean checkSender;
    private final boolean checkPort;
    private final AtomicReference<PeerTable> peers;
    private final TrafficCounters counters;
    private final Consumer<Throwable> errors;
    private final TcpCoalescer coalescer;
    private final TcpCoalescer.Sink toTun;
    private final ByteBuffer batch;
    /** For a USO frame the TUN refused: where it is split into datagrams, allocated at the first refusal. */
    private ByteBuffer split;
    private TcpSegmenter splitter;
    private final ByteBuffer view;
    private final UdpSocket.Received info = new UdpSocket.Received();
    private volatile boolean running = true;
    private boolean tunClosed;
    // The time of this drain's receives, epoch milliseconds; 0 until an admitted datagram needs it.
    private long now;

    /**
     * An ingress path; allocates its buffers (64 KiB, plus about 600 KiB for coalescing on a virtio-header TUN).
     *
     * @param ownSubnet   this node's subnet: admitted inner destinations lie in it
     * @param network     the overlay network, or null: only tells {@link DropReason#FOREIGN_SOURCE} from
     *                    {@link DropReason#SPOOFED_SOURCE}
     * @param checkSender whether datagrams must come from a lease's public address (true unless peers are behind NAT)
     */
    public IngressPath(TunDevice tun, DatagramPort port, Encapsulator encapsulator, int mtu, Ipv4Prefix ownSubnet,
                       Ipv4Prefix network, boolean checkSender, AtomicReference<PeerTable> peers,
                       TrafficCounters counters, Consumer<Throwable> errors) {
        this(tun, port, encapsulator, mtu, ownSubnet, network, checkSender, peers, counters, errors,
                tun.vnetHeader() ? TcpCoalescer.withDefaults() : null);
    }

    /** As the public constructor, with this coalescer (null for none) for a virtio-header TUN: for tests. */
    IngressPath(TunDevice tun, DatagramPort port, Encapsulator encapsulator, int mtu, Ipv4Prefix ownSubnet,
                Ipv4Prefix network, boolean checkSender, AtomicReference<PeerTable> peers,
                TrafficCounters counters, Consumer<Throwable> errors, TcpCoalescer coalescer) {
        this.tun = tun;
        this.port = port;
        this.encapsulator = encapsulator;
        this.mtu = mtu;
        this.ownNetwork = ownSubnet.networkInt();
        this.ownMask = ownSubnet.maskInt();
        this.network = network == null ? 0 : network.networkInt();
        this.networkMask = network == null ? 0 : network.maskInt();
        this.checkSender = checkSender;
        this.checkPort = encapsulator.fixedSourcePort();
        this.peers = peers;
        this.counters = counters;
        this.errors = errors;
        this.coalescer = coalescer;
        this.toTun = this::writeFrame;
        this.batch = ByteBuffer.allocateDirect(UdpSocket.MAX_GRO_BYTES + 1);
        this.view = batch.duplicate();
    }

    /** Tells {@link #drain} to handle nothing more once its current receive returns. */
    public void stop() {
        running = false;
    }

    /** Whether admitted packets are coalesced for a virtio-header TUN. */
    public boolean coalescing() {
        return coalescer != null;
    }

    /**
     * Handles the datagrams already queued on the port, at most {@code maxReceives} receives, without waiting, then
     * writes the coalesced packets to the TUN: for a reader that waits with {@link DatagramPort#awaitReadable()}.
     *
     * @return the number of receives that returned a datagram (or a GRO run); 0 if none was queued
     * @throws ClosedChannelException if the port or the TUN is closed: the loop ends
     * @throws IOException            if a receive fails
     */
    public int drain(int maxReceives) throws IOException {
        int receives = 0;
        now = 0;
        while (receives < maxReceives && running) {
            batch.clear();
            int n = port.tryReceive(batch, info);
            if (n < 0) {
                break;
            }
            receives++;
            if (running) {
                ingest(n);
            }
        }
        if (coalescer != null && coalescer.pendingPackets() > 0) {
            coalescer.flush(toTun);
        }
        if (tunClosed) {
            throw new ClosedChannelException();
        }
        return receives;
    }

    /** Admits and forwards the datagrams of one receive of {@code n} bytes described by {@link #info}. */
    private void ingest(int n) throws IOException {
        PeerTable table = peers.get();
        int sender = -1;
        if (checkSender) {
            sender = table.senderIndex(info.address(), info.port(), checkPort);
            if (sender < 0) {
                counters.drops(DropReason.UNKNOWN_SENDER, info.segmentCount());
                return;
            }
        }
        if (info.truncated()) {
            counters.drop(DropReason.OVERSIZE);
            return;
        }
        if (n == 0) {
            counters.drop(DropReason.RUNT);
            return;
        }
        int size = info.segmentSize() > 0 ? info.segmentSize() : n;
        for (int off = 0; off < n; off += size) {
            view.limit(Math.min(off + size, n)).position(off);
            Peer peer = admit(table, sender);
            if (peer == null) {
                continue;
            }
            if (now == 0) {
                // Once per drain (its receives arrived within microseconds), not per datagram of a GRO batch.
                now = System.currentTimeMillis();
            }
            PeerCounters.of(peer).received(view.remaining(), now);
            forward();
        }
    }

    /**
     * Decapsulates the datagram in the view and runs the inner checks: the sending peer if admitted (the inner packet
     * in the view), else null with the drop counted.
     */
    private Peer admit(PeerTable table, int sender) {
        DropReason reason = encapsulator.decapsulate(view, mtu);
        if (reason == null) {
            reason = Ipv4Header.validate(view, mtu);
        }
        if (reason != null) {
            counters.drop(reason);
            return null;
        }
        int at = view.position();
        int source = Ipv4Header.source(view, at);
        Peer peer = checkSender ? table.sourcePeer(sender, source) : table.lookup(source);
        if (peer == null) {
            counters.drop(networkMask != 0 && (source & networkMask) != network ? DropReason.FOREIGN_SOURCE
                    : DropReason.SPOOFED_SOURCE);
            return null;
        }
        if ((Ipv4Header.destination(view, at) & ownMask) != ownNetwork) {
            counters.drop(DropReason.FOREIGN_DESTINATION);
            return null;
        }
        return peer;
    }

    private void forward() throws IOException {
        int at = view.position();
        int length = view.remaining();
        if (coalescer != null) {
            if (!coalescer.offer(batch, at, length)) {
                coalescer.flush(toTun);
                coalescer.offer(batch, at, length);
            }
            return;
        }
        try {
            tun.write(view);
        } catch (ClosedChannelException e) {
            throw e;
        } catch (IOException e) {
            report(e);
            counters.drop(DropReason.TUN_WRITE_FAILED);
            return;
        }
        counters.packet(length);
    }

    private void writeFrame(ByteBuffer buf, int offset, int length, int packets, int packetBytes) {
        buf.limit(offset + length).position(offset);
        try {
            tun.write(buf);
        } catch (ClosedChannelException e) {
            tunClosed = true;
            counters.drops(DropReason.TUN_WRITE_FAILED, packets);
            return;
        } catch (IOException e) {
            if (packets > 1 && refusedUso(e, buf, offset)) {
                // A kernel without USO on TUN writes (before Linux 6.2, or one that says so): merge no more UDP and
                // send this run datagram by datagram. Logged once; nothing is lost.
                LOG.info("{} refused a USO frame ({}): UDP datagrams go to it one by one", tun.name(), e.getMessage());
                coalescer.stopMergingUdp();
                writeDatagrams(buf, offset, length, packets);
                return;
            }
            report(e);
            counters.drops(DropReason.TUN_WRITE_FAILED, packets);
            return;
        }
        counters.packets(packets, packetBytes);
    }

    private static boolean refusedUso(IOException e, ByteBuffer buf, int offset) {
        return e instanceof ErrnoException && ((ErrnoException) e).errno() == ErrnoException.EINVAL
                && (VirtioNetHeader.gsoType(buf, offset) & ~VirtioNetHeader.GSO_ECN) == VirtioNetHeader.GSO_UDP_L4;
    }

    /** Splits a USO frame the TUN refused into its datagrams (complete checksums) and writes them one by one. */
    private void writeDatagrams(ByteBuffer buf, int offset, int length, int packets) {
        if (split == null) {
            split = ByteBuffer.allocateDirect(VirtioNetHeader.LENGTH + TcpCoalescer.MAX_PACKET
                    + TcpCoalescer.MAX_UDP_SEGMENTS * (VirtioNetHeader.LENGTH + Ipv4Header.MIN_LENGTH + 8));
            splitter = new TcpSegmenter(mtu);
        }
        split.clear();
        buf.limit(buf.capacity());
        TcpSegmenter.Result r = splitter.segment(buf, offset, length, split, 0, VirtioNetHeader.LENGTH);
        if (r != TcpSegmenter.Result.SEGMENTED) {
            counters.drops(DropReason.TUN_WRITE_FAILED, packets);
            return;
        }
        int count = splitter.segmentCount();
        int stride = VirtioNetHeader.LENGTH + splitter.segmentLength();
        for (int i = 0; i < count; i++) {
            int at = i * stride;
            int datagram = i == count - 1 ? splitter.lastSegmentLength() : splitter.segmentLength();
            split.clear(); // a write moved the limit, which bounds absolute puts too
            VirtioNetHeader.clear(split, at);
            split.limit(at + VirtioNetHeader.LENGTH + datagram).position(at);
            try {
                tun.write(split);
            } catch (ClosedChannelException e) {
                tunClosed = true;
                counters.drops(DropReason.TUN_WRITE_FAILED, count - i);
                return;
            } catch (IOException e) {
                report(e);
                counters.drop(DropReason.TUN_WRITE_FAILED);
                continue;
            }
            counters.packet(datagram);
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
