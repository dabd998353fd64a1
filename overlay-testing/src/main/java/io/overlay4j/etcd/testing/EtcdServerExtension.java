package io.overlay4j.etcd.testing;

import io.overlay4j.testing.Requirements;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Runs a real single-member etcd on loopback for integration tests. Use it as
 * {@code @RegisterExtension static final EtcdServerExtension ETCD = new EtcdServerExtension();} (one server for the
 * class) or as an instance field (one server per test).
 *
 * <p>The {@code etcd} binary is looked up as {@link Requirements#requireBinary} does: missing, the tests are skipped on
 * a laptop and fail under {@code CI=true}. The server gets free loopback client and peer ports and a temporary data
 * directory, logs to {@code etcd.log} in that directory's parent, and is killed and its files deleted after the tests,
 * also when they fail or the JVM exits. {@link #stop()} and {@link #start()} restart it on the same ports and data, for
 * outage tests. {@link #withTls()} gives a server that requires TLS client certificates.
 */
public final class EtcdServerExtension implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback,
        AfterEachCallback {
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(10);
    private static final Pattern REVISION = Pattern.compile("\"revision\":(\\d+)");

    private final boolean tls;
    private Path baseDir;
    private Path dataDir;
    private Path logFile;
    private int clientPort;
    private int peerPort;
    private Process process;
    private Thread shutdownHook;
    private boolean perClass;

    /** A plaintext server. */
    public EtcdServerExtension() {
        this(false);
    }

    private EtcdServerExtension(boolean tls) {
        this.tls = tls;
    }

    /**
     * A server that speaks TLS to clients and requires client certificates, all issued by a throw-away CA that
     * {@code openssl} creates in the temporary directory: see {@link #caFile()}, {@link #clientCertFile()},
     * {@link #clientKeyFile()}. Needs the {@code openssl} binary (skipped, or failing under {@code CI=true}).
     */
    public static EtcdServerExtension withTls() {
        return new EtcdServerExtension(true);
    }

    /** The CA certificate (PEM) that issued the server and client certificates; TLS servers only. */
    public Path caFile() {
        return baseDir.resolve("ca.crt");
    }

    /** A client certificate (PEM, CN {@code root}) the server accepts; TLS servers only. */
    public Path clientCertFile() {
        return baseDir.resolve("client.crt");
    }

    /** The PKCS#8 PEM key of {@link #clientCertFile()}; TLS servers only. */
    public Path clientKeyFile() {
        return baseDir.resolve("client.key");
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        perClass = true;
        setUp();
    }

    @Override
    public void afterAll(ExtensionContext context) {
        if (perClass) {
            tearDown();
        }
    }

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        if (!perClass) {
            setUp();
        }
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (!perClass) {
            tearDown();
        }
    }

    /** The client URL, {@code http://127.0.0.1:<port>} ({@code https} for a TLS server). */
    public String endpoint() {
        return (tls ? "https" : "http") + "://127.0.0.1:" + clientPort;
    }

    /** The server's log file. */
    public Path logFile() {
        return logFile;
    }

    /** Whether the server process is running. */
    public synchronized boolean isRunning() {
        return process != null && process.isAlive();
    }

    /** Starts the server (again) on the same ports and data directory and waits until it answers (at most 10 s). */
    public synchronized void start() {
        if (isRunning()) {
            return;
        }
        String etcd = Requirements.findBinary("etcd");
        String peer = "http://127.0.0.1:" + peerPort;
        List<String> cmd = new ArrayList<>(List.of(etcd, "--name", "t", "--data-dir", dataDir.toString(),
                "--listen-client-urls", endpoint(), "--advertise-client-urls", endpoint(),
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "t=" + peer));
        if (tls) {
            cmd.addAll(List.of("--cert-file", baseDir.resolve("server.crt").toString(),
                    "--key-file", baseDir.resolve("server.key").toString(),
                    "--client-cert-auth", "--trusted-ca-file", caFile().toString()));
        }
        try {
            process = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + cmd, e);
        }
        awaitReady();
    }

    /** Stops the server (SIGTERM, then SIGKILL after 5 s); its data stays for {@link #start()}. */
    public synchronized void stop() {
        Process p = process;
        process = null;
        if (p == null) {
            return;
        }
        p.destroy();
        try {
            if (!p.waitFor(5, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Runs {@code etcdctl} (API v3) against this server and returns its standard output.
     *
     * <p>Without {@code etcdctl} installed (Debian package {@code etcd-client}) the calling test is skipped, or fails
     * under {@code CI=true}.
     *
     * @throws AssertionError if it exits with a non-zero status (the message holds its output)
     */
    public String etcdctl(String... args) {
        Requirements.requireBinary("etcdctl");
        String etcdctl = Requirements.findBinary("etcdctl");
        List<String> cmd = new ArrayList<>(List.of(etcdctl, "--endpoints=" + endpoint(), "--command-timeout=5s"));
        if (tls) {
            cmd.addAll(List.of("--cacert=" + caFile(), "--cert=" + clientCertFile(), "--key=" + clientKeyFile()));
        }
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("ETCDCTL_API", "3");
        try {
            Process p = pb.start();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(15, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("etcdctl timed out: " + cmd);
            }
            String text = new String(out, StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new AssertionError("etcdctl exited with " + p.exitValue() + ": " + cmd + "\n" + text);
            }
            return text;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running etcdctl", e);
        }
    }

    /** The store's current revision. */
    public long revision() {
        Matcher m = REVISION.matcher(etcdctl("get", "--limit=1", "-w", "json", "/"));
        if (!m.find()) {
            throw new AssertionError("no revision in etcdctl output");
        }
        return Long.parseLong(m.group(1));
    }

    /** Compacts the store up to its current revision (physically), and returns that revision. */
    public long compact() {
        long rev = revision();
        etcdctl("compaction", "--physical", Long.toString(rev));
        return rev;
    }

    private void setUp() throws IOException {
        Requirements.requireBinary("etcd");
        baseDir = Files.createTempDirectory("overlay4j-etcd-");
        dataDir = baseDir.resolve("data");
        logFile = baseDir.resolve("etcd.log");
        clientPort = freePort();
        peerPort = freePort();
        while (peerPort == clientPort) {
            peerPort = freePort();
        }
        if (tls) {
            Requirements.requireBinary("openssl");
            Requirements.requireBinary("etcdctl");
            makeCertificates();
        }
        shutdownHook = new Thread(this::destroy, "overlay4j-etcd-cleanup");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
        try {
            start();
        } catch (RuntimeException | Error e) {
            tearDown();
            throw e;
        }
    }

    private void tearDown() {
        destroy();
        if (shutdownHook != null) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException ignored) {
                // the JVM is exiting: the hook runs anyway
            }
            shutdownHook = null;
        }
    }

    private synchronized void destroy() {
        Process p = process;
        process = null;
        if (p != null) {
            p.destroyForcibly();
            try {
                p.waitFor(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (baseDir != null) {
            try (Stream<Path> files = Files.walk(baseDir)) {
                files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            } catch (IOException ignored) {
                // best effort
            }
        }
    }

    /** A throw-away CA, a server certificate for IP 127.0.0.1 and a client certificate for CN root, EC P-256. */
    private void makeCertificates() throws IOException {
        String ec = "ec_paramgen_curve:prime256v1";
        run("openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", ec, "-days", "1",
                "-subj", "/CN=overlay4j-test-ca", "-keyout", "ca.key", "-out", "ca.crt");
        for (String[] who : new String[][] {{"server", "/CN=127.0.0.1", "serverAuth,clientAuth"},
                {"client", "/CN=root", "clientAuth"}}) {
            String name = who[0];
            Files.writeString(baseDir.resolve(name + ".ext"),
                    "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=" + who[2] + "\n");
            run("openssl", "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", ec, "-subj", who[1],
                    "-keyout", name + ".key", "-out", name + ".csr");
            run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "1", "-extfile", name + ".ext", "-out", name + ".crt");
        }
    }

    private void run(String... cmd) throws IOException {
        Process p = new ProcessBuilder(cmd).directory(baseDir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        try {
            if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new AssertionError("failed: " + String.join(" ", cmd) + "\n" + out);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted: " + String.join(" ", cmd), e);
        }
    }

    private void awaitReady() {
        if (tls) {
            awaitReadyWithEtcdctl();
            return;
        }
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofMillis(500)).build();
        HttpRequest health = HttpRequest.newBuilder(URI.create(endpoint() + "/health"))
                .timeout(Duration.ofSeconds(1)).build();
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new AssertionError("etcd exited with " + process.exitValue() + "; see " + tail());
            }
            try {
                HttpResponse<String> r = http.send(health, HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200 && r.body().contains("\"health\":\"true\"")) {
                    return;
                }
            } catch (IOException e) {
                // not listening yet
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for etcd", e);
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for etcd", e);
            }
        }
        throw new AssertionError("etcd did not answer on " + endpoint() + " within " + READY_TIMEOUT + "; " + tail());
    }

    private void awaitReadyWithEtcdctl() {
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        AssertionError last = null;
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new AssertionError("etcd exited with " + process.exitValue() + "; see " + tail());
            }
            try {
                etcdctl("--dial-timeout=500ms", "endpoint", "health");
                return;
            } catch (AssertionError e) {
                last = e;
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for etcd", e);
            }
        }
        throw new AssertionError("etcd did not answer on " + endpoint() + " within " + READY_TIMEOUT + "; " + tail(),
                last);
    }

    private String tail() {
        try {
            List<String> lines = Files.readAllLines(logFile);
            return "log tail:\n" + String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "no log (" + e + ")";
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
