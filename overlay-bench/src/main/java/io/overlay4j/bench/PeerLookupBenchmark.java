package io.overlay4j.bench;

import io.overlay4j.udp.Peer;
import io.overlay4j.udp.PeerTable;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@link PeerTable#lookup} with 10, 1,000 and 10,000 peers (/24 subnets of {@code 10.0.0.0/8}), for destinations that
 * hit a peer and for destinations in subnets no peer owns (misses: the NO_ROUTE path), against the baseline of
 * flannel's C proxy ({@code find_route} in {@code backend/udp/proxy_amd64.c}): a linear first-match scan over
 * {@code int[] network, int[] mask} arrays that, on a hit at index {@code i > 0}, swaps entry {@code i} with entry 0
 * (flannel's "move to front"; included here, as flannel does it).
 *
 * <p>Each operation takes the next of 4,096 precomputed destinations (random peers, random hosts), so neither the
 * branch predictor nor the caches see one repeated address. Both sides return the {@link Peer} (the baseline keeps a
 * parallel {@code Peer[]}, swapped along). Expect the table flat in the peer count and the scan linear (about half
 * the entries per hit, all of them per miss).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
@State(Scope.Thread)
public class PeerLookupBenchmark {

    /** The number of peers in the table. */
    @Param({"10", "1000", "10000"})
    public int peers;

    private PeerTable table;
    private int[] hits;
    private int[] misses;
    private int next;
    private int[] network;
    private int[] mask;
    private Peer[] scanPeers;

    /** Builds the table, the baseline arrays (in the table's subnet order) and the destination streams. */
    @Setup(Level.Trial)
    public void setUp() {
        table = Fixtures.peerTable(peers, Fixtures.UNDERLAY_PEER, 8285);
        hits = Fixtures.destinations(peers, true, 1);
        misses = Fixtures.destinations(peers, false, 2);
        List<Peer> list = table.peers();
        network = new int[list.size()];
        mask = new int[list.size()];
        scanPeers = list.toArray(new Peer[0]);
        for (int i = 0; i < network.length; i++) {
            network[i] = scanPeers[i].subnet().networkInt();
            mask[i] = scanPeers[i].subnet().maskInt();
        }
        for (int d : hits) {
            if (table.lookup(d) == null || flannelFindRoute(d) == null) {
                throw new IllegalStateException("a hit destination misses");
            }
        }
        for (int d : misses) {
            if (table.lookup(d) != null || flannelFindRoute(d) != null) {
                throw new IllegalStateException("a miss destination hits");
            }
        }
    }

    private int nextIndex() {
        return next++ & (Fixtures.DESTINATIONS - 1);
    }

    /** The hash table, destination owned by a peer. */
    @Benchmark
    public Peer tableHit() {
        return table.lookup(hits[nextIndex()]);
    }

    /** The hash table, destination owned by no peer. */
    @Benchmark
    public Peer tableMiss() {
        return table.lookup(misses[nextIndex()]);
    }

    /** flannel's linear scan with swap-to-front, destination owned by a peer. */
    @Benchmark
    public Peer flannelScanHit() {
        return flannelFindRoute(hits[nextIndex()]);
    }

    /** flannel's linear scan, destination owned by no peer (scans every entry). */
    @Benchmark
    public Peer flannelScanMiss() {
        return flannelFindRoute(misses[nextIndex()]);
    }

    /** flannel's {@code find_route}: first match wins, and the match is swapped with entry 0. */
    private Peer flannelFindRoute(int dst) {
        int[] net = network;
        int[] msk = mask;
        for (int i = 0; i < net.length; i++) {
            if ((dst & msk[i]) == net[i]) {
                if (i != 0) {
                    int n = net[i];
                    int m = msk[i];
                    Peer p = scanPeers[i];
                    net[i] = net[0];
                    msk[i] = msk[0];
                    scanPeers[i] = scanPeers[0];
                    net[0] = n;
                    msk[0] = m;
                    scanPeers[0] = p;
                }
                return scanPeers[0];
            }
        }
        return null;
    }
}
