package io.overlay4j.bench.scale;

import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** A single-member etcd on loopback, in a temporary data directory, for a benchmark run. */
final class EtcdProcess implements AutoCloseable {
    private final Process process;
    private final Path dataDir;
    private final String endpoint;

    private EtcdProcess(Process process, Path dataDir, String endpoint) {
        this.process = process;
        this.dataDir = dataDir;
        this.endpoint = endpoint;
    }

    /** Starts {@code etcd} from the PATH and waits until it answers (20 s). */
    static EtcdProcess start() throws IOException, InterruptedException {
        int client = freePort();
        int peer = freePort();
        Path dir = Files.createTempDirectory("o4j-bench-etcd");
        String url = "http://127.0.0.1:" + client;
        String peerUrl = "http://127.0.0.1:" + peer;
        Process p = new ProcessBuilder(List.of("etcd", "--name", "bench", "--data-dir", dir.toString(),
                "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peerUrl,
                "--initial-advertise-peer-urls", peerUrl, "--initial-cluster", "bench=" + peerUrl,
                "--quota-backend-bytes", Long.toString(4L << 30)))
                .redirectErrorStream(true).redirectOutput(dir.resolve("etcd.log").toFile()).start();
        EtcdProcess etcd = new EtcdProcess(p, dir, url);
        try (Client c = Client.builder().endpoints(url).build()) {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (true) {
                try {
                    c.getKVClient().get(ByteSequence.from("/", StandardCharsets.UTF_8)).get(1, TimeUnit.SECONDS);
                    return etcd;
                } catch (Exception e) {
                    if (!p.isAlive() || System.nanoTime() > deadline) {
                        etcd.close();
                        throw new IOException("etcd did not come up: " + e, e);
                    }
                    Thread.sleep(100);
                }
            }
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress("127.0.0.1", 0));
            return s.getLocalPort();
        }
    }

    String endpoint() {
        return endpoint;
    }

    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try (Stream<Path> s = Files.walk(dataDir)) {
            s.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException ignored) {
            // a temporary directory left behind is harmless
        }
    }
}
