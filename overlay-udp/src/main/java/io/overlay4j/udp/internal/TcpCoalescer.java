package io.overlay4j.udp.internal;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Ingress offload (software GRO): merges the complete IPv4/TCP packets of one receive batch into TCP super-packets
 * that one write to a TUN device opened with {@code IFF_VNET_HDR} injects at once, following wireguard-go's rules
 * ({@code tun/offload_linux.go}), and, where the kernel takes them (Linux 6.2 or later; see
 * {@link #withDefaults()}), runs of UDP datagrams into USO super-datagrams. Nothing is allocated per packet.
 *
 * <p>Use: {@link #offer} each packet of a batch (what it needs is copied into a preallocated arena, the caller keeps
 * its buffer), then {@link #flush} once: it hands every resulting frame ({@link VirtioNetHeader} + packet) to a
 * {@link Sink} in order and empties the coalescer. If {@code offer} returns false the arena or the packet table is
 * full: flush and offer the packet again.
 *
 * <p>A packet is merged into the latest item of its flow only if all of these hold (else it starts a new item, so
 * the order within a flow is always kept):
 * <ul>
 *   <li>IPv4 without options (IHL 5), not a fragment, total length equal to the bytes offered, protocol TCP;</li>
 *   <li>TCP flags exactly ACK or PSH|ACK, and some payload;</li>
 *   <li>same addresses and ports, same acknowledgment number, same TCP header length and option bytes, same IP TOS,
 *   TTL and DF flag as the item's first packet;</li>
 *   <li>its sequence number directly follows the item's last byte;</li>
 *   <li>the item does not end with a PSH or with a segment shorter than the first one, and the packet's payload is
 *   not longer than the first one's (the item's {@code gso_size});</li>
 *   <li>the merged packet stays within 65,535 bytes;</li>
 *   <li>the IP header checksum and the TCP checksum of both the item's first packet and the packet are valid (checked
 *   lazily, only when a merge is otherwise possible: a merged packet gets a fresh checksum, so a corrupt segment
 *   must never be laundered into one).</li>
 * </ul>
 *
 * <p>UDP (with {@code mergeUdp}): a datagram joins its flow's latest item if that began with a datagram of the same
 * flow with a valid non-zero checksum, no later datagram of the item was shorter than the first, its payload is not
 * longer than the first one's, TOS, TTL and DF are the same, the item holds fewer than {@value #MAX_UDP_SEGMENTS}
 * datagrams and stays within 65,535 bytes, and both checksums are valid (checked as for TCP). The merged item becomes
 * {@code virtio_net_hdr{NEEDS_CSUM, GSO_UDP_L4, hdr_len = 28, gso_size, csum_start = 20, csum_offset = 6}}, the
 * first datagram's headers with the IP total length and UDP length of the whole run and the pseudo-header sum in the
 * UDP checksum field; the kernel splits it into the same datagrams, each with its own length and checksum, and one
 * write carries what took up to 64.
 *
 * <p>Copies: a packet that joins the item whose bytes end the arena (a run of one flow, the usual case) adds only its
 * payload behind them, checked in the caller's buffer first, so the item's frame is built in place; an item whose
 * packets lie apart (flows interleaved) is gathered into a second buffer at {@link #flush}.
 *
 * <p>Output: a merged item becomes {@code virtio_net_hdr{NEEDS_CSUM, GSO_TCPV4, hdr_len, gso_size, csum_start = 20,
 * csum_offset = 16}} followed by the first packet's headers with the total length and IP header checksum fixed, PSH
 * set if the last packet had it, and in the TCP checksum field the folded, <em>not</em> complemented pseudo-header
 * sum (what the kernel expects with {@code NEEDS_CSUM}), then all payloads. Every other packet is emitted as it was
 * offered, behind an all-zero virtio header. Frames come out in the order of each item's first packet.
 *
 * <p>Not thread-safe: one instance per receiving thread.
 */
public final class TcpCoalescer {
    /** Receives the frames of {@link #flush}. */
    @FunctionalInterface
    public interface Sink {
        /**
         * One frame: a {@value VirtioNetHeader#LENGTH}-byte virtio header and a packet, {@code length} bytes in all
         * from {@code offset}. The buffer belongs to the coalescer and is only valid during the call; the sink must
         * not change bytes outside the frame or keep the buffer, but may move its position and limit (the coalescer
         * uses absolute indexes only), e.g. to pass it to {@code TunDevice.write}.
         *
         * @param packets     how many offered packets the frame carries (1 unless merged)
         * @param packetBytes their lengths as offered, added up
         */
        void frame(ByteBuffer buf, int offset, int length, int packets, int packetBytes);
    }

    /** The largest IPv4 packet. */
    public static final int MAX_PACKET = 65535;
    private static final int IP_HEADER = Ipv4Header.MIN_LENGTH;
    private static final int HEADROOM = VirtioNetHeader.LENGTH;

    private static final int MERGEABLE = 1;
    /** The item ended with PSH or a short segment: nothing may follow. */
    private static final int CLOSED = 2;
    /** The item's first packet's checksums were verified. */
    private static final int VERIFIED = 4;
    /** A UDP item: merged datagrams leave as one USO super-datagram. */
    private static final int UDP = 8;
    /** The most datagrams in one UDP item (the kernel's {@code UDP_MAX_SEGMENTS} for a segmented send). */
    static final int MAX_UDP_SEGMENTS = 64;
    private static final int UDP_HEADER = 8;

    private final ByteBuffer arena;
    private final ByteBuffer out;
    private int arenaUsed;

    // Per offered packet, by arrival index.
    private final int[] pktOffset;
    private final int[] pktLength;
    private final int[] pktNext;
    private int packets;

    // Per item (a run of packets to emit as one frame), in emission order.
    private final int[] itemFirst;
    private final int[] itemLast;
    private final int[] itemCount;
    private final int[] itemState;
    private final int[] itemHeaderLength;
    private final int[] itemGsoSize;
    private final int[] itemTotal;
    private final int[] itemBytes;
    private final int[] itemNextSeq;
    private final int[] itemLastFlags;
    private int items;

    // Open-addressing flow table: flow key → its latest item.
    private final int maxFlows;
    private final int flowMask;
    private final int[] flowSource;
    private final int[] flowDestination;
    private final int[] flowPorts;
    private final int[] flowProtocol;
    private final int[] flowItem;
    /** Whether UDP datagrams are merged too (the kernel takes USO frames on a TUN write since Linux 6.2). */
    private boolean mergeUdp;
    private int flows;

    /**
     * A coalescer.
     *
     * @param maxFlows   flows tracked per batch (e.g. 64); packets of further flows pass through unmerged
     * @param maxPackets packets per batch (e.g. 128)
     * @param arenaBytes bytes of packets per batch; at least {@value #MAX_PACKET} + 10 (e.g. 256 KiB)
     */
    public TcpCoalescer(int maxFlows, int maxPackets, int arenaBytes) {
        this(maxFlows, maxPackets, arenaBytes, false);
    }

    /**
     * A coalescer that merges UDP datagrams too if {@code mergeUdp}: a run of one flow's datagrams of one size (the
     * last may be shorter), each with a valid non-zero checksum, becomes one {@code GSO_UDP_L4} frame, which the
     * kernel splits into the same datagrams again (Linux 6.2 or later).
     */
    public TcpCoalescer(int maxFlows, int maxPackets, int arenaBytes, boolean mergeUdp) {
        if (maxFlows < 1 || maxPackets < 1 || arenaBytes < MAX_PACKET + HEADROOM) {
            throw new IllegalArgumentException("need maxFlows, maxPackets >= 1 and arenaBytes >= 65545: " + maxFlows
                    + ", " + maxPackets + ", " + arenaBytes);
        }
        arena = ByteBuffer.allocateDirect(arenaBytes);
        out = ByteBuffer.allocateDirect(HEADROOM + MAX_PACKET);
        pktOffset = new int[maxPackets];
        pktLength = new int[maxPackets];
        pktNext = new int[maxPackets];
        itemFirst = new int[maxPackets];
        itemLast = new int[maxPackets];
        itemCount = new int[maxPackets];
        itemState = new int[maxPackets];
        itemHeaderLength = new int[maxPackets];
        itemGsoSize = new int[maxPackets];
        itemTotal = new int[maxPackets];
        itemBytes = new int[maxPackets];
        itemNextSeq = new int[maxPackets];
        itemLastFlags = new int[maxPackets];
        this.maxFlows = maxFlows;
        int tableSize = Integer.highestOneBit(maxFlows * 2 - 1) << 1;
        flowMask = tableSize - 1;
        flowSource = new int[tableSize];
        flowDestination = new int[tableSize];
        flowPorts = new int[tableSize];
        flowProtocol = new int[tableSize];
        flowItem = new int[tableSize];
        this.mergeUdp = mergeUdp;
        Arrays.fill(flowItem, -1);
    }

    /**
     * 64 flows, 128 packets, 512 KiB of arena; UDP merged where the running kernel takes USO frames (Linux 6.2 or
     * later) unless the system property {@value #MERGE_UDP_PROPERTY} is {@code false}.
     */
    public static TcpCoalescer withDefaults() {
        return new TcpCoalescer(64, 128, 512 * 1024, udpMergeSupported());
    }

    /** The system property that, set to {@code false}, keeps UDP datagrams apart on the TUN (one write each). */
    public static final String MERGE_UDP_PROPERTY = "overlay4j.coalesceUdp";

    /** Whether this kernel accepts {@code VIRTIO_NET_HDR_GSO_UDP_L4} on a TUN write (Linux 6.2) and it is wanted. */
    static boolean udpMergeSupported() {
        try {
            if ("false".equals(System.getProperty(MERGE_UDP_PROPERTY))) {
                return false;
            }
            return kernelAtLeast(System.getProperty("os.version", ""), 6, 2);
        } catch (SecurityException e) {
            return false;
        }
    }

    /** Whether a Linux release string such as {@code 6.18.44-fc} is at least {@code major.minor}. */
    static boolean kernelAtLeast(String release, int major, int minor) {
        String[] parts = release.split("[.-]", 3);
        try {
            int ma = Integer.parseInt(parts[0]);
            int mi = parts.length > 1 ? Integer.parseInt(parts[1]) : 0;
            return ma > major || (ma == major && mi >= minor);
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** Whether UDP datagrams are merged (see {@link #TcpCoalescer(int, int, int, boolean)}). */
    public boolean mergesUdp() {
        return mergeUdp;
    }

    /** Merges no more UDP datagrams from the next {@link #offer} on: the TUN refused a USO frame. */
    public void stopMergingUdp() {
        mergeUdp = false;
    }

    /** The number of packets offered since the last flush. */
    public int pendingPackets() {
        return packets;
    }

    /**
     * Offers one complete IP packet of the current batch: copies {@code length} bytes from {@code offset} (absolute,
     * below the buffer's limit; its position and byte order are ignored and nothing of it is changed; the caller
     * keeps ownership) and merges it into its flow's latest item where the rules allow.
     *
     * @return false, having copied nothing, if the arena or the packet table is full: {@link #flush} and offer again
     * @throws IllegalArgumentException if {@code length} is not 1..65535
     */
    public boolean offer(ByteBuffer buf, int offset, int length) {
        if (length < 1 || length > MAX_PACKET) {
            throw new IllegalArgumentException("a packet must be 1..65535 bytes: " + length);
        }
        if (packets == pktOffset.length || arenaUsed + HEADROOM + length > arena.capacity()) {
            return false;
        }
        arena.clear(); // a sink may have moved the limit, which bounds absolute puts too
        int protocol = length < IP_HEADER + UDP_HEADER ? -1 : Ipv4Header.protocol(buf, offset);
        boolean isTcp = protocol == TcpHeader.PROTOCOL_TCP && length >= IP_HEADER + TcpHeader.MIN_LENGTH;
        boolean isUdp = protocol == Ipv4Header.PROTOCOL_UDP && mergeUdp;
        if (buf.get(offset) != 0x45 || !(isTcp || isUdp) || Ipv4Header.totalLength(buf, offset) != length
                || (Ipv4Header.getUnsignedShort(buf, offset + Ipv4Header.FRAGMENT_OFFSET) & 0x3fff) != 0) {
            newItem(copyIn(buf, offset, length), false, 0, 0, 0);
            return true; // not IPv4/TCP (or UDP) without options, or a fragment: as it is
        }
        if (isUdp) {
            return offerUdp(buf, offset, length);
        }
        int tcp = offset + IP_HEADER;
        int thl = TcpHeader.headerLength(buf, tcp);
        if (thl < TcpHeader.MIN_LENGTH || IP_HEADER + thl > length) {
            newItem(copyIn(buf, offset, length), false, 0, 0, 0);
            return true;
        }
        int flags = TcpHeader.flags(buf, tcp);
        int payload = length - IP_HEADER - thl;
        boolean candidate = payload > 0
                && (flags == TcpHeader.FLAG_ACK || flags == (TcpHeader.FLAG_ACK | TcpHeader.FLAG_PSH));
        int seq = TcpHeader.sequence(buf, tcp);
        int source = Ipv4Header.source(buf, offset);
        int destination = Ipv4Header.destination(buf, offset);
        int ports = TcpHeader.ports(buf, tcp);
        int slot = flowSlot(source, destination, ports, TcpHeader.PROTOCOL_TCP);
        if (candidate && slot >= 0 && flowItem[slot] >= 0) {
            int item = flowItem[slot];
            // Checked in the caller's buffer, before anything is copied.
            if (canMerge(item, buf, offset, thl, payload, seq) && verified(item)
                    && checksumsValid(buf, offset, length)) {
                append(item, buf, offset, length, IP_HEADER + thl);
                merge(item, length, payload, flags);
                return true;
            }
        }
        int item = newItem(copyIn(buf, offset, length), candidate, IP_HEADER + thl, payload, seq + payload);
        itemLastFlags[item] = flags;
        if ((flags & TcpHeader.FLAG_PSH) != 0) {
            itemState[item] |= CLOSED;
        }
        track(slot, source, destination, ports, TcpHeader.PROTOCOL_TCP, item);
        return true;
    }

    /** {@link #offer} for an IPv4 UDP datagram without options, not a fragment, {@code length} bytes. */
    private boolean offerUdp(ByteBuffer buf, int offset, int length) {
        int udp = offset + IP_HEADER;
        int payload = length - IP_HEADER - UDP_HEADER;
        boolean candidate = payload > 0
                && Ipv4Header.getUnsignedShort(buf, udp + 4) == length - IP_HEADER
                && Ipv4Header.getUnsignedShort(buf, udp + 6) != 0; // a zero checksum (none) would gain one
        int source = Ipv4Header.source(buf, offset);
        int destination = Ipv4Header.destination(buf, offset);
        int ports = Ipv4Header.getIntBigEndian(buf, udp);
        int slot = flowSlot(source, destination, ports, Ipv4Header.PROTOCOL_UDP);
        if (candidate && slot >= 0 && flowItem[slot] >= 0) {
            int item = flowItem[slot];
            // Checked in the caller's buffer, before anything is copied (as for TCP).
            if (joinable(item, buf, offset, payload) && verified(item) && checksumsValid(buf, offset, length)) {
                append(item, buf, offset, length, IP_HEADER + UDP_HEADER);
                merge(item, length, payload, 0);
                if (itemCount[item] == MAX_UDP_SEGMENTS) {
                    itemState[item] |= CLOSED;
                }
                return true;
            }
        }
        int item = newItem(copyIn(buf, offset, length), candidate, IP_HEADER + UDP_HEADER, payload, 0);
        itemState[item] |= UDP;
        track(slot, source, destination, ports, Ipv4Header.PROTOCOL_UDP, item);
        return true;
    }

    /**
     * Adds a packet that joins {@code item}: only its payload (behind {@code headerLength} bytes) if the item's last
     * packet ends the arena (a run of one flow's packets becomes its super-packet in place), else the whole packet,
     * linked behind the item's last.
     */
    private void append(int item, ByteBuffer buf, int offset, int length, int headerLength) {
        int last = itemLast[item];
        if (pktOffset[last] + pktLength[last] == arenaUsed) {
            int payload = length - headerLength;
            arena.put(arenaUsed, buf, offset + headerLength, payload);
            arenaUsed += payload;
            pktLength[last] += payload;
            packets++;
        } else {
            int p = copyIn(buf, offset, length);
            pktNext[last] = p;
            itemLast[item] = p;
        }
    }

    /**
     * Makes {@code item} its flow's latest, if the flow has or gets a slot: even a packet that cannot merge, so that
     * later packets of the flow never jump over it.
     */
    private void track(int slot, int source, int destination, int ports, int protocol, int item) {
        if (slot < 0) {
            return;
        }
        if (flowItem[slot] < 0) {
            flows++;
            flowSource[slot] = source;
            flowDestination[slot] = destination;
            flowPorts[slot] = ports;
            flowProtocol[slot] = protocol;
        }
        flowItem[slot] = item;
    }

    /**
     * The rules for TCP and UDP alike (same flow was checked by the lookup): the item is open, the packet's payload
     * is not longer than the item's first, the merged packet stays within 65,535 bytes, and TOS, TTL and DF are the
     * item's first packet's.
     */
    private boolean joinable(int item, ByteBuffer buf, int offset, int payload) {
        if ((itemState[item] & (MERGEABLE | CLOSED)) != MERGEABLE || payload > itemGsoSize[item]
                || itemTotal[item] + payload > MAX_PACKET) {
            return false;
        }
        int first = pktOffset[itemFirst[item]];
        return arena.get(first + Ipv4Header.TOS_OFFSET) == buf.get(offset + Ipv4Header.TOS_OFFSET)
                && arena.get(first + Ipv4Header.TTL_OFFSET) == buf.get(offset + Ipv4Header.TTL_OFFSET)
                && ((arena.get(first + Ipv4Header.FRAGMENT_OFFSET) ^ buf.get(offset + Ipv4Header.FRAGMENT_OFFSET))
                & 0x40) == 0;
    }

    /** Copies a packet into the arena as a new entry of the packet table; returns its index. */
    private int copyIn(ByteBuffer buf, int offset, int length) {
        int at = arenaUsed + HEADROOM; // room for the virtio header in front, so single packets go out in place
        arena.put(at, buf, offset, length);
        arenaUsed = at + length;
        int p = packets++;
        pktOffset[p] = at;
        pktLength[p] = length;
        pktNext[p] = -1;
        return p;
    }

    /**
     * The table slot of a flow: its own if present, else a free one where it can be inserted, or -1 if it is absent
     * and the table already tracks {@code maxFlows} flows.
     */
    private int flowSlot(int source, int destination, int ports, int protocol) {
        int h = ((source * 31 + destination) * 31 + ports) * 31 + protocol;
        h *= 0x9e3779b9;
        int i = (h ^ h >>> 16) & flowMask;
        while (true) {
            if (flowItem[i] < 0) {
                return flows < maxFlows ? i : -1;
            }
            if (flowSource[i] == source && flowDestination[i] == destination && flowPorts[i] == ports
                    && flowProtocol[i] == protocol) {
                return i;
            }
            i = (i + 1) & flowMask;
        }
    }

    private int newItem(int packet, boolean mergeable, int headerLength, int payload, int nextSeq) {
        int item = items++;
        itemFirst[item] = packet;
        itemLast[item] = packet;
        itemCount[item] = 1;
        itemState[item] = mergeable ? MERGEABLE : 0;
        itemHeaderLength[item] = headerLength;
        itemGsoSize[item] = payload;
        itemTotal[item] = pktLength[packet];
        itemBytes[item] = pktLength[packet];
        itemNextSeq[item] = nextSeq;
        itemLastFlags[item] = 0;
        return item;
    }

    /** The header rules for the TCP packet at {@code offset} of {@code buf}: same flow was checked by the lookup. */
    private boolean canMerge(int item, ByteBuffer buf, int offset, int thl, int payload, int seq) {
        if (!joinable(item, buf, offset, payload) || itemHeaderLength[item] != IP_HEADER + thl
                || seq != itemNextSeq[item]) {
            return false;
        }
        int firstTcp = pktOffset[itemFirst[item]] + IP_HEADER;
        int tcp = offset + IP_HEADER;
        // The acknowledgment number, then the options (a multiple of 4 bytes: the data offset counts 32-bit words).
        for (int i = TcpHeader.ACKNOWLEDGMENT_OFFSET; i < thl; i = i == TcpHeader.ACKNOWLEDGMENT_OFFSET
                ? TcpHeader.MIN_LENGTH : i + 4) {
            if (Ipv4Header.getIntBigEndian(arena, firstTcp + i) != Ipv4Header.getIntBigEndian(buf, tcp + i)) {
                return false;
            }
        }
        return true;
    }

    /** Whether the item's first packet has valid checksums, verifying once; an item that fails is closed. */
    private boolean verified(int item) {
        if ((itemState[item] & VERIFIED) != 0) {
            return true;
        }
        int first = itemFirst[item];
        if (checksumsValid(arena, pktOffset[first], pktLength[first])) {
            itemState[item] |= VERIFIED;
            return true;
        }
        itemState[item] &= ~MERGEABLE;
        return false;
    }

    /** The IP header checksum and the TCP or UDP checksum of a packet. */
    private static boolean checksumsValid(ByteBuffer buf, int at, int length) {
        // TcpHeader's check is that of any transport checksum: the pseudo-header carries the protocol.
        return Ipv4Header.isChecksumValid(buf, at) && TcpHeader.isChecksumValid(buf, at, IP_HEADER, length);
    }

    /**
     * Counts a packet of {@code length} bytes, {@code payload} of them TCP or UDP payload, into the item it joined
     * ({@code flags}: its TCP flags, 0 for UDP).
     */
    private void merge(int item, int length, int payload, int flags) {
        itemCount[item]++;
        itemTotal[item] += payload;
        itemBytes[item] += length;
        itemNextSeq[item] += payload;
        itemLastFlags[item] = flags;
        if (payload < itemGsoSize[item] || (flags & TcpHeader.FLAG_PSH) != 0) {
            itemState[item] |= CLOSED;
        }
    }

    /**
     * Emits every item, in order, to {@code sink} and empties the coalescer (also if the sink throws).
     *
     * @return the number of frames emitted
     */
    public int flush(Sink sink) {
        int n = items;
        try {
            for (int item = 0; item < n; item++) {
                int first = itemFirst[item];
                arena.clear();
                if (itemCount[item] == 1) {
                    int at = pktOffset[first] - HEADROOM;
                    VirtioNetHeader.clear(arena, at);
                    sink.frame(arena, at, HEADROOM + pktLength[first], 1, pktLength[first]);
                } else if (itemLast[item] == first) {
                    // Every payload was appended behind the first packet: the frame is already in the arena.
                    int at = pktOffset[first] - HEADROOM;
                    finishMerged(arena, at, item);
                    sink.frame(arena, at, HEADROOM + itemTotal[item], itemCount[item], itemBytes[item]);
                } else {
                    sink.frame(out, 0, buildMerged(item), itemCount[item], itemBytes[item]);
                }
            }
            return n;
        } finally {
            reset();
        }
    }

    /** Gathers an item whose packets lie apart in the arena (flows interleaved) into {@link #out}; its length. */
    private int buildMerged(int item) {
        int first = itemFirst[item];
        int hdrLen = itemHeaderLength[item];
        out.clear();
        int ip = HEADROOM;
        out.put(ip, arena, pktOffset[first], pktLength[first]);
        int at = ip + pktLength[first];
        for (int p = pktNext[first]; p >= 0; p = pktNext[p]) {
            int payload = pktLength[p] - hdrLen;
            out.put(at, arena, pktOffset[p] + hdrLen, payload);
            at += payload;
        }
        finishMerged(out, 0, item);
        return HEADROOM + itemTotal[item];
    }

    /**
     * Writes the virtio header at {@code at} and fixes the first packet's headers behind it for the whole item: total
     * length, IP header checksum, PSH if the last packet had it, the pseudo-header sum in the TCP checksum field.
     */
    private void finishMerged(ByteBuffer buf, int at, int item) {
        int total = itemTotal[item];
        if ((itemState[item] & UDP) != 0) {
            // The UDP length and checksum are those of the whole run; the kernel gives each datagram its own.
            VirtioNetHeader.set(buf, at, VirtioNetHeader.FLAG_NEEDS_CSUM, VirtioNetHeader.GSO_UDP_L4,
                    IP_HEADER + UDP_HEADER, itemGsoSize[item], IP_HEADER, VirtioNetHeader.UDP_CSUM_OFFSET);
            int ip = at + HEADROOM;
            Ipv4Header.putShort(buf, ip + Ipv4Header.TOTAL_LENGTH_OFFSET, total);
            Ipv4Header.updateChecksum(buf, ip);
            Ipv4Header.putShort(buf, ip + IP_HEADER + 4, total - IP_HEADER);
            Ipv4Header.putShort(buf, ip + IP_HEADER + 6,
                    Checksums.fold(Checksums.pseudoHeaderSum(buf, ip, total - IP_HEADER)));
            return;
        }
        VirtioNetHeader.set(buf, at, VirtioNetHeader.FLAG_NEEDS_CSUM, VirtioNetHeader.GSO_TCPV4,
                itemHeaderLength[item], itemGsoSize[item], IP_HEADER, VirtioNetHeader.TCP_CSUM_OFFSET);
        int ip = at + HEADROOM;
        Ipv4Header.putShort(buf, ip + Ipv4Header.TOTAL_LENGTH_OFFSET, total);
        Ipv4Header.updateChecksum(buf, ip);
        int tcp = ip + IP_HEADER;
        TcpHeader.flags(buf, tcp, TcpHeader.flags(buf, tcp) | itemLastFlags[item] & TcpHeader.FLAG_PSH);
        TcpHeader.checksum(buf, tcp, Checksums.fold(Checksums.pseudoHeaderSum(buf, ip, total - IP_HEADER)));
    }

    private void reset() {
        arenaUsed = 0;
        packets = 0;
        items = 0;
        if (flows > 0) {
            Arrays.fill(flowItem, -1);
            flows = 0;
        }
    }
}
