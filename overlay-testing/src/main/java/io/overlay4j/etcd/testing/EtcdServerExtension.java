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
 * Runs a real etcd on loopback for integration tests: one member, or a cluster of several ({@link #cluster(int)}).
 * Use it as {@code @RegisterExtension static final EtcdServerExtension ETCD = new EtcdServerExtension();} (one server
 * for the class) or as an instance field (one server per test).
 *
 * <p>The {@code etcd} binary is looked up as {@link Requirements#requireBinary} does: missing, the tests are skipped on
 * a laptop and fail under {@code CI=true}. Every member gets free loopback client and peer ports and a temporary data
 * directory, logs to {@code etcd-<n>.log} in that directory's parent, and is killed and its files deleted after the
 * tests, also when they fail or the JVM exits. {@link #stop()} and {@link #start()} restart all members on the same
 * ports and data, for outage tests; {@link #kill(int)}, {@link #stop(int)} and {@link #start(int)} act on one member of
 * a cluster, and {@link #leader()} names the current leader. {@link #withTls()} gives a single server that requires TLS
 * client certificates.
 */
public final class EtcdServerExtension implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback,
        AfterEachCallback {
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(20);
    private static final Pattern REVISION = Pattern.compile("\"revision\":(\\d+)");
    private static final Pattern STATUS = Pattern.compile(
            "\"Endpoint\":\"([^\"]+)\",\"Status\":\\{\"header\":\\{[^}]*\"member_id\":(\\d+)[^}]*}"
                    + ".*?\"leader\":(\\d+)");

    private final boolean tls;
    private final int size;
    private final List<Member> members = new ArrayList<>();
    private Path baseDir;
    private Thread shutdownHook;
    private boolean perClass;

    /** A plaintext single-member server. */
    public EtcdServerExtension() {
        this(false, 1);
    }

    private EtcdServerExtension(boolean tls, int size) {
        this.tls = tls;
        this.size = size;
    }

    /**
     * A plaintext cluster of {@code members} members (3 tolerates the loss of one), all on loopback. The allocator
     * under test should get {@link #endpoints()}.
     */
    public static EtcdServerExtension cluster(int members) {
        if (members < 1) {
            throw new IllegalArgumentException("a cluster needs at least one member: " + members);
        }
        return new EtcdServerExtension(false, members);
    }

    /**
     * A server that speaks TLS to clients and requires client certificates, all issued by a throw-away CA that
     * {@code openssl} creates in the temporary directory: see {@link #caFile()}, {@link #clientCertFile()},
     * {@link #clientKeyFile()}. Needs the {@code openssl} binary (skipped, or failing under {@code CI=true}).
     */
    public static EtcdServerExtension withTls() {
        return new EtcdServerExtension(true, 1);
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

    /** The first member's client URL, {@code http://127.0.0.1:<port>} ({@code https} for a TLS server). */
    public String endpoint() {
        return members.get(0).clientUrl();
    }

    /** Every member's client URL, in member order. */
    public List<String> endpoints() {
        return members.stream().map(Member::clientUrl).toList();
    }

    /** The number of members. */
    public int size() {
        return size;
    }

    /** The first member's log file. */
    public Path logFile() {
        return members.get(0).log;
    }

    /** Whether every member is running. */
    public synchronized boolean isRunning() {
        return members.stream().allMatch(Member::isRunning);
    }

    /** Whether member {@code n} (from 0) is running. */
    public synchronized boolean isRunning(int n) {
        return members.get(n).isRunning();
    }

    /**
     * Starts every stopped member (again) on the same ports and data directory and waits until the cluster answers
     * as healthy (it has a leader), at most 20 s.
     */
    public synchronized void start() {
        for (Member m : members) {
            if (!m.isRunning()) {
                m.launch();
            }
        }
        awaitHealthy();
    }

    /** Stops every member (SIGTERM, then SIGKILL after 5 s); their data stays for {@link #start()}. */
    public synchronized void stop() {
        for (Member m : members) {
            m.stop(false);
        }
    }

    /**
     * Starts member {@code n} again on its ports and data and waits until it serves clients (not until the cluster
     * has a leader: with too few members up it never will; see {@link #awaitHealthy()}).
     */
    public synchronized void start(int n) {
        Member m = members.get(n);
        if (!m.isRunning()) {
            m.launch();
        }
        m.awaitListening();
    }

    /** Stops member {@code n} (SIGTERM, then SIGKILL after 5 s); its data stays for {@link #start(int)}. */
    public synchronized void stop(int n) {
        members.get(n).stop(false);
    }

    /** Kills member {@code n} at once (SIGKILL), as a crash would; its data stays for {@link #start(int)}. */
    public synchronized void kill(int n) {
        members.get(n).stop(true);
    }

    /**
     * The member that leads the cluster now, from {@code etcdctl endpoint status} of the running members.
     *
     * @throws AssertionError if no running member knows a leader
     */
    public int leader() {
        List<String> running = new ArrayList<>();
        for (Member m : members) {
            if (m.isRunning()) {
                running.add(m.clientUrl());
            }
        }
        String out = etcdctlAt(String.join(",", running), "endpoint", "status", "-w", "json");
        Matcher mt = STATUS.matcher(out);
        while (mt.find()) {
            if (mt.group(2).equals(mt.group(3))) {
                return endpoints().indexOf(mt.group(1));
            }
        }
        throw new AssertionError("no leader among " + running + ": " + out);
    }

    /** Waits (at most 20 s) until a running member reports the cluster healthy: it has a leader and serves reads. */
    public void awaitHealthy() {
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        String last = "";
        while (System.nanoTime() < deadline) {
            for (Member m : members) {
                if (!m.isRunning()) {
                    continue;
                }
                String health = m.health();
                if (health != null && health.contains("\"health\":\"true\"")) {
                    return;
                }
                last = m.name + ": " + health;
            }
            sleep(50);
        }
        throw new AssertionError("etcd did not become healthy within " + READY_TIMEOUT + " (" + last + "); "
                + members.get(0).tail());
    }

    /**
     * Runs {@code etcdctl} (API v3) against this server (every running member of a cluster) and returns its standard
     * output.
     *
     * <p>Without {@code etcdctl} installed (Debian package {@code etcd-client}) the calling test is skipped, or fails
     * under {@code CI=true}.
     *
     * @throws AssertionError if it exits with a non-zero status (the message holds its output)
     */
    public String etcdctl(String... args) {
        List<String> running = new ArrayList<>();
        for (Member m : members) {
            if (m.isRunning()) {
                running.add(m.clientUrl());
            }
        }
        return etcdctlAt(String.join(",", running.isEmpty() ? endpoints() : running), args);
    }

    private String etcdctlAt(String endpoints, String... args) {
        Requirements.requireBinary("etcdctl");
        String etcdctl = Requirements.findBinary("etcdctl");
        List<String> cmd = new ArrayList<>(List.of(etcdctl, "--endpoints=" + endpoints, "--command-timeout=5s"));
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
        List<Integer> ports = new ArrayList<>();
        while (ports.size() < 2 * size) {
            int p = freePort();
            if (!ports.contains(p)) {
                ports.add(p);
            }
        }
        String token = "overlay4j-" + Long.toHexString(System.nanoTime());
        for (int i = 0; i < size; i++) {
            members.add(new Member("m" + i, ports.get(2 * i), ports.get(2 * i + 1), baseDir.resolve("data-" + i),
                    baseDir.resolve("etcd-" + i + ".log"), token));
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
        members.clear();
    }

    private synchronized void destroy() {
        for (Member m : members) {
            m.stop(true);
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

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted waiting for etcd", e);
        }
    }

    /** One etcd process: its ports, data and log, started again on the same ones. */
    private final class Member {
        final String name;
        final int clientPort;
        final int peerPort;
        final Path dataDir;
        final Path log;
        final String token;
        Process process;

        Member(String name, int clientPort, int peerPort, Path dataDir, Path log, String token) {
            this.name = name;
            this.clientPort = clientPort;
            this.peerPort = peerPort;
            this.dataDir = dataDir;
            this.log = log;
            this.token = token;
        }

        String clientUrl() {
            return (tls ? "https" : "http") + "://127.0.0.1:" + clientPort;
        }

        String peerUrl() {
            return "http://127.0.0.1:" + peerPort;
        }

        boolean isRunning() {
            return process != null && process.isAlive();
        }

        void launch() {
            String etcd = Requirements.findBinary("etcd");
            List<String> initial = new ArrayList<>();
            for (Member m : members) {
                initial.add(m.name + "=" + m.peerUrl());
            }
            List<String> cmd = new ArrayList<>(List.of(etcd, "--name", name, "--data-dir", dataDir.toString(),
                    "--listen-client-urls", clientUrl(), "--advertise-client-urls", clientUrl(),
                    "--listen-peer-urls", peerUrl(), "--initial-advertise-peer-urls", peerUrl(),
                    "--initial-cluster", String.join(",", initial), "--initial-cluster-token", token,
                    "--initial-cluster-state", "new"));
            if (tls) {
                cmd.addAll(List.of("--cert-file", baseDir.resolve("server.crt").toString(),
                        "--key-file", baseDir.resolve("server.key").toString(),
                        "--client-cert-auth", "--trusted-ca-file", caFile().toString()));
            }
            try {
                process = new ProcessBuilder(cmd)
                        .redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                        .start();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot start " + cmd, e);
            }
        }

        void stop(boolean kill) {
            Process p = process;
            process = null;
            if (p == null) {
                return;
            }
            if (kill) {
                p.destroyForcibly();
            } else {
                p.destroy();
            }
            try {
                if (!p.waitFor(5, TimeUnit.SECONDS)) {
                    p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }

        /** Waits until the member answers on its client port (healthy or not). */
        void awaitListening() {
            long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
            while (System.nanoTime() < deadline) {
                if (!isRunning()) {
                    throw new AssertionError("etcd " + name + " exited; " + tail());
                }
                if (health() != null) {
                    return;
                }
                sleep(50);
            }
            throw new AssertionError("etcd " + name + " did not listen on " + clientUrl() + " within "
                    + READY_TIMEOUT + "; " + tail());
        }

        /** The body of {@code /health} ({@code {"health":"true"}} once there is a leader), or null if no answer. */
        String health() {
            if (!isRunning()) {
                return null;
            }
            if (tls) {
                try {
                    etcdctlAt(clientUrl(), "--dial-timeout=500ms", "endpoint", "health");
                    return "{\"health\":\"true\"}";
                } catch (AssertionError e) {
                    return e.getMessage().contains("unhealthy") ? "{\"health\":\"false\"}" : null;
                }
            }
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofMillis(500)).build();
            HttpRequest request = HttpRequest.newBuilder(URI.create(clientUrl() + "/health"))
                    .timeout(Duration.ofSeconds(2)).build();
            try {
                return http.send(request, HttpResponse.BodyHandlers.ofString()).body();
            } catch (IOException e) {
                return null; // not listening (yet)
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for etcd", e);
            }
        }

        String tail() {
            try {
                List<String> lines = Files.readAllLines(log);
                return "log tail of " + name + ":\n"
                        + String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
            } catch (IOException e) {
                return "no log (" + e + ")";
            }
        }
    }
}
