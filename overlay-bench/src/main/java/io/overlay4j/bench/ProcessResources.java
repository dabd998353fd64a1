package io.overlay4j.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * This JVM's threads, file descriptors and resident memory (from {@code /proc/self}), its heap in use and committed,
 * and its committed non-heap (code cache, metaspace): what the benchmarks and the long tests check stays flat. RSS
 * less the committed heap and non-heap is the native rest (direct buffers, thread stacks, malloc), where a leak in
 * JNA or the sockets would show.
 *
 * @param threads          threads, from {@code /proc/self/status}
 * @param fds              open file descriptors, or -1 if {@code /proc/self/fd} could not be listed
 * @param rssKb            resident set size in KiB
 * @param heapUsed         heap in use, bytes (live heap when taken by {@link #afterGc()})
 * @param heapCommitted    committed heap, bytes
 * @param nonHeapCommitted committed non-heap, bytes
 */
public record ProcessResources(int threads, int fds, long rssKb, long heapUsed, long heapCommitted,
        long nonHeapCommitted) {

    /** A sample taken after three {@code System.gc()} calls 100 ms apart, so {@link #heapUsed} is the live heap. */
    public static ProcessResources afterGc() throws InterruptedException {
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(100);
        }
        return sample();
    }

    /** A sample as things are (no GC). */
    public static ProcessResources sample() {
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        long nonHeap = ManagementFactory.getMemoryMXBean().getNonHeapMemoryUsage().getCommitted();
        int threads = 0;
        long rss = 0;
        int fds = -1;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Threads:")) {
                    threads = Integer.parseInt(line.substring(8).trim());
                } else if (line.startsWith("VmRSS:")) {
                    rss = Long.parseLong(line.substring(6).trim().split("\\s+")[0]);
                }
            }
            try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
                fds = (int) s.count();
            }
        } catch (IOException e) {
            // what was read stands; fds stays -1
        }
        return new ProcessResources(threads, fds, rss, heap.getUsed(), heap.getCommitted(), nonHeap);
    }

    /** This process's CPU time so far, nanoseconds (0 where the JVM does not report it). */
    public static long cpuNanos() {
        java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean
                ? ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime() : 0;
    }

    /** RSS less the committed heap and non-heap, KiB. */
    public long nativeRestKb() {
        return rssKb - heapCommitted / 1024 - nonHeapCommitted / 1024;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "threads %d, fds %d, RSS %.1f MiB (heap %.1f, code and metaspace %.1f,"
                        + " native rest %.1f), heap in use %.1f MiB", threads, fds, rssKb / 1024.0,
                heapCommitted / 1048576.0, nonHeapCommitted / 1048576.0, nativeRestKb() / 1024.0,
                heapUsed / 1048576.0);
    }
}
