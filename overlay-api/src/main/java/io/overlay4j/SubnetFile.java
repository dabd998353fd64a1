package io.overlay4j;

import static com.google.common.base.Preconditions.checkArgument;
import static java.util.Objects.requireNonNull;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * flannel's {@code subnet.env} (default {@code /run/flannel/subnet.env}, flannel-facts §6): the file Docker, CNI and
 * {@code mk-docker-opts.sh} read, and from which the node takes its previous subnet on restart.
 *
 * <p>Written atomically with mode 0644 whatever the umask; read leniently (anything unreadable means "no value", never
 * an exception), as flanneld does with godotenv.
 */
public final class SubnetFile {
    private static final Logger log = LoggerFactory.getLogger(SubnetFile.class);
    private static final Set<PosixFilePermission> FILE_MODE = PosixFilePermissions.fromString("rw-r--r--");
    private static final Set<PosixFilePermission> DIR_MODE = PosixFilePermissions.fromString("rwxr-xr-x");

    private SubnetFile() {
    }

    /**
     * What the file holds (IPv4 only).
     *
     * @param network the whole overlay network, e.g. {@code 100.96.0.0/16}
     * @param subnet  this node's subnet, e.g. {@code 100.96.1.0/24} (written as its first host address)
     * @param mtu     the MTU containers should use
     * @param ipMasq  whether flannel installed the masquerade rules
     */
    public record Contents(Ipv4Prefix network, Ipv4Prefix subnet, int mtu, boolean ipMasq) {

        /** Checks the values: prefixes present, subnet length at most 31 (so it has a first host), MTU positive. */
        public Contents {
            requireNonNull(network, "network");
            requireNonNull(subnet, "subnet");
            checkArgument(subnet.length() <= 31, "subnet has no host address: %s", subnet);
            checkArgument(mtu > 0, "MTU must be positive: %s", mtu);
        }

        /**
         * The file's text, exactly as flanneld writes it: {@code FLANNEL_NETWORK=100.96.0.0/16\nFLANNEL_SUBNET=
         * 100.96.1.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n} ({@code FLANNEL_SUBNET} is the subnet's first host
         * address with the subnet's prefix length).
         */
        public String format() {
            return "FLANNEL_NETWORK=" + network + "\n"
                    + "FLANNEL_SUBNET=" + subnet.addressAt(1).getHostAddress() + "/" + subnet.length() + "\n"
                    + "FLANNEL_MTU=" + mtu + "\n"
                    + "FLANNEL_IPMASQ=" + ipMasq + "\n";
        }
    }

    /**
     * Writes the file atomically: parent directories are created (mode 0755), the text goes to a temporary file in
     * the same directory, which gets mode 0644 and is renamed over {@code file}.
     *
     * @throws IOException if a directory or the file cannot be written
     */
    public static void write(Path file, Contents contents) throws IOException {
        Path abs = file.toAbsolutePath();
        Path dir = abs.getParent();
        createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + abs.getFileName(), ".tmp");
        try {
            Files.write(tmp, contents.format().getBytes(StandardCharsets.UTF_8));
            setMode(tmp, FILE_MODE);
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * The subnet recorded in {@code FLANNEL_SUBNET}, host bits cleared ({@code 100.96.1.1/24} gives
     * {@code 100.96.1.0/24}); empty if the file or the key is missing, the value lists several subnets or does not
     * parse. Never throws.
     */
    public static Optional<Ipv4Prefix> readPreviousSubnet(Path file) {
        Map<String, String> env = readEnv(file);
        if (env == null) {
            return Optional.empty();
        }
        return prefix(file, env, "FLANNEL_SUBNET");
    }

    /**
     * The whole contents, or empty if the file is missing or any of the four values is missing or unreadable.
     * Never throws.
     */
    public static Optional<Contents> read(Path file) {
        Map<String, String> env = readEnv(file);
        if (env == null) {
            return Optional.empty();
        }
        Optional<Ipv4Prefix> network = prefix(file, env, "FLANNEL_NETWORK");
        Optional<Ipv4Prefix> subnet = prefix(file, env, "FLANNEL_SUBNET");
        String mtu = env.get("FLANNEL_MTU");
        String masq = env.get("FLANNEL_IPMASQ");
        if (network.isEmpty() || subnet.isEmpty() || mtu == null || masq == null) {
            log.warn("{} is incomplete, ignoring it", file);
            return Optional.empty();
        }
        Boolean ipMasq = parseBool(masq);
        try {
            if (ipMasq == null) {
                throw new IllegalArgumentException("FLANNEL_IPMASQ is not a boolean: " + masq);
            }
            return Optional.of(new Contents(network.get(), subnet.get(), Integer.parseInt(mtu), ipMasq));
        } catch (IllegalArgumentException e) {
            log.warn("{} holds an unreadable value ({}), ignoring it", file, e.getMessage());
            return Optional.empty();
        }
    }

    /** Like Go's {@code strconv.ParseBool}. */
    private static Boolean parseBool(String s) {
        switch (s) {
            case "1", "t", "T", "TRUE", "true", "True":
                return Boolean.TRUE;
            case "0", "f", "F", "FALSE", "false", "False":
                return Boolean.FALSE;
            default:
                return null;
        }
    }

    private static Optional<Ipv4Prefix> prefix(Path file, Map<String, String> env, String key) {
        String value = env.get(key);
        if (value == null) {
            log.debug("{} has no {}", file, key);
            return Optional.empty();
        }
        String[] parts = value.split(",", -1);
        if (parts.length != 1) {
            log.warn("{} in {} lists {} values, ignoring it: {}", key, file, parts.length, value);
            return Optional.empty();
        }
        try {
            return Optional.of(Ipv4Prefix.parse(value.trim()));
        } catch (IllegalArgumentException e) {
            log.warn("{} in {} is not an IPv4 CIDR, ignoring it: {}", key, file, value);
            return Optional.empty();
        }
    }

    /** The file's KEY=value pairs (godotenv-like: comments, {@code export}, quotes), or null if unreadable. */
    private static Map<String, String> readEnv(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            log.debug("{} does not exist", file);
            return null;
        } catch (IOException | RuntimeException e) {
            log.warn("cannot read {}: {}", file, e.toString());
            return null;
        }
        Map<String, String> env = new HashMap<>();
        for (String line : text.split("\r?\n")) {
            String l = line.trim();
            if (l.isEmpty() || l.startsWith("#")) {
                continue;
            }
            if (l.startsWith("export ")) {
                l = l.substring(7).trim();
            }
            int eq = l.indexOf('=');
            if (eq <= 0) {
                continue;
            }
            String key = l.substring(0, eq).trim();
            String value = l.substring(eq + 1).trim();
            if (value.length() >= 2 && (value.charAt(0) == '"' || value.charAt(0) == '\'')
                    && value.charAt(value.length() - 1) == value.charAt(0)) {
                value = value.substring(1, value.length() - 1);
            } else {
                int hash = value.indexOf(" #");
                if (hash >= 0) {
                    value = value.substring(0, hash).trim();
                }
            }
            env.put(key, value);
        }
        return env;
    }

    private static void createDirectories(Path dir) throws IOException {
        if (Files.isDirectory(dir)) {
            return;
        }
        Path parent = dir.getParent();
        if (parent != null) {
            createDirectories(parent);
        }
        try {
            Files.createDirectory(dir);
            setMode(dir, DIR_MODE);
        } catch (java.nio.file.FileAlreadyExistsException e) {
            if (!Files.isDirectory(dir)) {
                throw e;
            }
        }
    }

    private static void setMode(Path p, Set<PosixFilePermission> mode) throws IOException {
        try {
            Files.setPosixFilePermissions(p, mode);
        } catch (UnsupportedOperationException e) {
            // not a POSIX file system: the platform default applies
        }
    }
}
