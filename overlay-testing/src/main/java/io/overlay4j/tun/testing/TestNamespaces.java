package io.overlay4j.tun.testing;

import static java.util.Objects.requireNonNull;

import io.overlay4j.testing.Requirements;
import io.overlay4j.tun.NetworkNamespace;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A JUnit 5 extension (or plain {@link AutoCloseable} helper) that creates uniquely named network namespaces for a
 * test and deletes them afterwards, even when the test fails. Register it per test class:
 *
 * <pre>{@code
 * @RegisterExtension
 * final TestNamespaces namespaces = new TestNamespaces();
 *
 * @Test
 * void pings() throws Exception {
 *     NetworkNamespace ns = namespaces.create();          // o4jt-3fa9c1d2
 *     namespaces.ip(ns, "link", "set", "lo", "up");       // shelling out is fine in tests
 *     ns.call(() -> ...);                                  // runs inside the namespace
 * }
 * }</pre>
 *
 * <p>Before each test it checks {@link Requirements#requireKernelNetworking()} (skip on a laptop, fail under
 * {@code CI=true}). Names are {@code <prefix>-<8 hex digits>} (prefix default {@value #DEFAULT_PREFIX}, at most 6
 * characters so names stay valid interface names too). A JVM shutdown hook deletes whatever a crashed test left.
 */
public final class TestNamespaces implements BeforeEachCallback, AfterEachCallback, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(TestNamespaces.class);

    /** The default name prefix: everything the tests create starts with it. */
    public static final String DEFAULT_PREFIX = "o4jt";
    private static final long COMMAND_TIMEOUT_SECONDS = 30;
    private static final Set<NetworkNamespace> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (NetworkNamespace ns : LIVE) {
                deleteQuietly(ns);
            }
        }, "o4jt-netns-cleanup"));
    }

    private final String prefix;
    private final Deque<NetworkNamespace> created = new ConcurrentLinkedDeque<>();

    /** Namespaces named {@code o4jt-<random>}. */
    public TestNamespaces() {
        this(DEFAULT_PREFIX);
    }

    /** Namespaces named {@code <prefix>-<random>}; {@code prefix} is 1–6 characters. */
    public TestNamespaces(String prefix) {
        requireNonNull(prefix, "prefix");
        if (prefix.isEmpty() || prefix.length() > 6 || prefix.contains("/")) {
            throw new IllegalArgumentException("prefix must be 1..6 characters without '/': " + prefix);
        }
        this.prefix = prefix;
    }

    /** The name prefix. */
    public String prefix() {
        return prefix;
    }

    /** A fresh unique name {@code <prefix>-<8 hex digits>} (at most 15 characters, also a valid device name). */
    public String uniqueName() {
        return prefix + "-" + String.format("%08x", ThreadLocalRandom.current().nextInt());
    }

    /**
     * Creates a uniquely named namespace, deleted after the test. Checks that its thread really runs elsewhere than
     * the caller, so a broken namespace can never make a test change the root namespace.
     */
    public NetworkNamespace create() throws IOException {
        NetworkNamespace ns = NetworkNamespace.create(uniqueName());
        created.push(ns);
        LIVE.add(ns);
        long inside;
        try {
            inside = ns.call(NetworkNamespace::currentInode);
        } catch (Exception e) {
            throw new IOException("cannot run code in " + ns.name(), e);
        }
        if (inside == NetworkNamespace.currentInode() || inside != ns.inode()) {
            throw new IllegalStateException("namespace " + ns.name() + " does not isolate: its thread is in netns "
                    + inside + ", the caller in " + NetworkNamespace.currentInode() + ", the file is " + ns.inode());
        }
        return ns;
    }

    /** Creates a uniquely named namespace with its loopback device up. */
    public NetworkNamespace createWithLoopback() throws IOException {
        NetworkNamespace ns = create();
        ip(ns, "link", "set", "lo", "up");
        return ns;
    }

    /**
     * Connects two namespaces with a veth pair, addresses both ends and sets them (and both loopbacks) up, e.g.
     * {@code connect(a, "o4jt-a0", "10.99.0.1/24", b, "o4jt-b0", "10.99.0.2/24")}.
     *
     * @param aDevice the veth end in {@code a} (at most 15 characters)
     * @param aCidr   its address with prefix length
     * @param bDevice the veth end in {@code b}
     * @param bCidr   its address with prefix length
     */
    public void connect(NetworkNamespace a, String aDevice, String aCidr, NetworkNamespace b, String bDevice,
                        String bCidr) throws IOException {
        ip(a, "link", "add", aDevice, "type", "veth", "peer", "name", bDevice, "netns", b.name());
        ip(a, "addr", "add", aCidr, "dev", aDevice);
        ip(b, "addr", "add", bCidr, "dev", bDevice);
        for (NetworkNamespace ns : List.of(a, b)) {
            ip(ns, "link", "set", "lo", "up");
        }
        ip(a, "link", "set", aDevice, "up");
        ip(b, "link", "set", bDevice, "up");
    }

    /**
     * Runs {@code ip <args>} inside {@code ns} ({@code ip -n <name> ...}) and returns its standard output.
     *
     * @throws IOException if it exits with non-zero status (the message has its output)
     */
    public String ip(NetworkNamespace ns, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(ipBinary(), "-n", ns.name()));
        cmd.addAll(Arrays.asList(args));
        return exec(cmd);
    }

    /** Runs {@code command} inside {@code ns} ({@code ip netns exec <name> ...}) and returns its standard output. */
    public String exec(NetworkNamespace ns, String... command) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(ipBinary(), "netns", "exec", ns.name()));
        cmd.addAll(Arrays.asList(command));
        return exec(cmd);
    }

    /** Runs a command in the root namespace and returns its standard output; non-zero exit is an IOException. */
    public static String exec(List<String> command) throws IOException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        try (InputStream in = p.getInputStream()) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            in.transferTo(out);
            if (!p.waitFor(COMMAND_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("timed out: " + String.join(" ", command));
            }
            String text = out.toString(StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new IOException(String.join(" ", command) + " exited " + p.exitValue() + ": " + text);
            }
            return text;
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted: " + String.join(" ", command), e);
        }
    }

    private static String ipBinary() {
        String ip = Requirements.findBinary("ip");
        return ip != null ? ip : "ip";
    }

    @Override
    public void beforeEach(ExtensionContext context) {
        Requirements.requireKernelNetworking();
    }

    @Override
    public void afterEach(ExtensionContext context) throws Exception {
        close();
    }

    /**
     * Deletes every namespace this instance created (newest first). Keeps the first failure and adds the rest as
     * suppressed.
     */
    @Override
    public void close() throws IOException {
        IOException failure = null;
        NetworkNamespace ns;
        while ((ns = created.poll()) != null) {
            try {
                ns.delete();
                LIVE.remove(ns);
                if (Files.exists(ns.path())) {
                    throw new IOException(ns.path() + " still exists after delete");
                }
            } catch (IOException | RuntimeException e) {
                if (failure == null) {
                    failure = new IOException("cannot delete network namespace " + ns.name(), e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private static void deleteQuietly(NetworkNamespace ns) {
        try {
            ns.delete();
        } catch (IOException | RuntimeException e) {
            LOG.warn("cannot delete network namespace {}", ns.name(), e);
        }
    }
}
