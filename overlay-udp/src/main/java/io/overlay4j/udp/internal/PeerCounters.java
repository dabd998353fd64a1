package io.overlay4j.udp.internal;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.PeerStats;
import io.overlay4j.udp.Peer;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.time.Instant;
import java.util.function.Function;

/**
 * The counters of one peer: egress (sent to it) written only by the egress thread, ingress (admitted from it) and the
 * last-seen time written only by the ingress thread. One object per peer subnet, handed from table to table when the
 * peer table is rebuilt (renewals, resyncs), so counting survives the copy-on-write swaps.
 *
 * <p>As in {@link TrafficCounters}, an increment is a plain read and a release write (no lock, no CAS, no fence on
 * x86) and readers use acquire reads. The egress and ingress slots lie at least 128 bytes apart (and away from the
 * array's ends), so the two writer threads never share a cache line, nor its adjacent-line prefetch partner.
 */
public final class PeerCounters {
    private static final VarHandle SLOTS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final int PAD = 8;
    private static final int EGRESS_PACKETS = PAD;
    private static final int EGRESS_BYTES = PAD + 1;
    private static final int INGRESS_PACKETS = EGRESS_BYTES + 1 + 2 * PAD;
    private static final int INGRESS_BYTES = INGRESS_PACKETS + 1;
    private static final int LAST_SEEN = INGRESS_PACKETS + 2;
    private static final int LENGTH = LAST_SEEN + 1 + PAD;

    // Set once by Peer's static initializer: a thread holding a Peer has seen it (class initialization is a
    // happens-before edge), so it needs no volatile read per packet.
    private static Function<Peer, PeerCounters> access;

    private final long[] slots = new long[LENGTH];

    /** The counters of {@code peer}; for the data paths. */
    public static PeerCounters of(Peer peer) {
        return access.apply(peer);
    }

    /**
     * Lets {@link Peer} hand its counters to the data paths without making them part of its API. Called once, by
     * {@code Peer}'s static initializer.
     *
     * @throws IllegalStateException on a second call
     */
    public static synchronized void access(Function<Peer, PeerCounters> accessor) {
        if (access != null) {
            throw new IllegalStateException("the peer counter accessor is set already");
        }
        access = accessor;
    }

    /** Counts one packet of {@code bytes} sent to the peer. Egress thread only. */
    public void sent(int bytes) {
        add(EGRESS_BYTES, bytes);
        add(EGRESS_PACKETS, 1);
    }

    /** Counts {@code packets} packets of {@code bytes} bytes in all sent to the peer. Egress thread only. */
    public void sent(int packets, long bytes) {
        add(EGRESS_BYTES, bytes);
        add(EGRESS_PACKETS, packets);
    }

    /**
     * Counts one admitted packet of {@code bytes} from the peer, received at {@code nowMillis} (epoch milliseconds).
     * Ingress thread only.
     */
    public void received(int bytes, long nowMillis) {
        add(INGRESS_BYTES, bytes);
        add(INGRESS_PACKETS, 1);
        if ((long) SLOTS.get(slots, LAST_SEEN) != nowMillis) {
            SLOTS.setRelease(slots, LAST_SEEN, nowMillis);
        }
    }

    private void add(int slot, long n) {
        SLOTS.setRelease(slots, slot, (long) SLOTS.get(slots, slot) + n);
    }

    private long read(int slot) {
        return (long) SLOTS.getAcquire(slots, slot);
    }

    /** Packets sent to the peer. */
    public long egressPackets() {
        return read(EGRESS_PACKETS);
    }

    /** Their bytes. */
    public long egressBytes() {
        return read(EGRESS_BYTES);
    }

    /** Packets admitted from the peer. */
    public long ingressPackets() {
        return read(INGRESS_PACKETS);
    }

    /** Their bytes. */
    public long ingressBytes() {
        return read(INGRESS_BYTES);
    }

    /** When the last admitted packet from the peer arrived, epoch milliseconds; 0 if none has. */
    public long lastSeenMillis() {
        return read(LAST_SEEN);
    }

    /** A snapshot for the API. */
    public PeerStats snapshot(Ipv4Prefix subnet) {
        // Packets before bytes in each direction: a packet's bytes are written before its count.
        long egressPackets = egressPackets();
        long egressBytes = egressBytes();
        long ingressPackets = ingressPackets();
        long ingressBytes = ingressBytes();
        long seen = lastSeenMillis();
        return new PeerStats(subnet, egressPackets, egressBytes, ingressPackets, ingressBytes,
                seen == 0 ? null : Instant.ofEpochMilli(seen));
    }
}
