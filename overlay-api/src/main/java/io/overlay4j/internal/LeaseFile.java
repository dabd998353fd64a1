package io.overlay4j.internal;

import static java.util.Objects.requireNonNull;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.Lease;
import io.overlay4j.LeaseAttributes;
import io.overlay4j.NetworkConfig;
import io.overlay4j.OverlayException;
import io.overlay4j.OverlayException.Kind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;

/**
 * The lease file behind {@code LocalSubnetAllocator}: its JSON format, reading, and atomic read-modify-write under an
 * exclusive lock.
 *
 * <p>Format: {@code {"config":{flannel config},"leases":{"100.96.1.0-24":{"value":{flannel lease JSON},
 * "expires":"2026-11-25T23:40:00Z"}}}}; a reservation has {@code "expires":null}. Every change writes a temporary
 * file in the same directory and renames it over the file, so readers never see a partial file and need no lock.
 * Writers hold a JVM-wide lock keyed by the file's canonical path (a {@link FileLock} is held per JVM, and taking it
 * twice in one JVM throws) and, across processes, a {@link FileLock} on the sidecar {@code <file>.lock}.
 *
 * <p>Entries that cannot be read are kept in the file untouched: one whose key and expiry are readable but whose value
 * is not still marks its subnet as taken (until it expires); one whose key is unreadable is only carried along.
 */
public final class LeaseFile {
    private static final Map<Path, ReentrantLock> JVM_LOCKS = new ConcurrentHashMap<>();

    private final Path file;
    private final Path lockFile;
    private final ReentrantLock jvmLock;

    /**
     * A lease file at {@code file}; its parent directory is created if missing.
     *
     * @throws IOException if the directory cannot be created or resolved
     */
    public LeaseFile(Path file) throws IOException {
        Path abs = file.toAbsolutePath().normalize();
        Path dir = Files.createDirectories(abs.getParent()).toRealPath();
        this.file = dir.resolve(abs.getFileName());
        this.lockFile = dir.resolve(abs.getFileName() + ".lock");
        this.jvmLock = JVM_LOCKS.computeIfAbsent(this.file, k -> new ReentrantLock());
    }

    /** The canonical path of the file. */
    public Path path() {
        return file;
    }

    /** One readable lease entry: its subnet, and the lease or {@code null} if only the value is unreadable. */
    public record Held(Ipv4Prefix subnet, Lease lease) {
    }

    /** The file's contents, mutable inside {@link #update}. */
    public static final class State {
        private Object config;
        private final Map<String, Object> entries;
        private final List<String> problems = new ArrayList<>();
        private final TreeMap<String, Held> held = new TreeMap<>();
        private final Map<String, Instant> expiry = new LinkedHashMap<>();
        private boolean dirty;

        private State(Object config, Map<String, Object> entries) {
            this.config = config;
            this.entries = entries;
            for (Map.Entry<String, Object> e : entries.entrySet()) {
                index(e.getKey(), e.getValue());
            }
        }

        private void index(String key, Object raw) {
            Ipv4Prefix subnet;
            try {
                subnet = Ipv4Prefix.fromSubnetKey(key);
            } catch (IllegalArgumentException e) {
                problems.add("entry " + key + ": not a subnet key");
                return;
            }
            if (!subnet.toSubnetKey().equals(key)) {
                problems.add("entry " + key + ": not a canonical subnet key");
                return;
            }
            if (!(raw instanceof Map) || !((Map<?, ?>) raw).containsKey("expires")) {
                problems.add("entry " + key + ": not an object with \"value\" and \"expires\"");
                return;
            }
            Map<?, ?> m = (Map<?, ?>) raw;
            Object exp = m.get("expires");
            Instant expires = null;
            if (exp != null) {
                try {
                    expires = Instant.parse((String) exp);
                } catch (ClassCastException | DateTimeParseException e) {
                    problems.add("entry " + key + ": unreadable expiry " + Json.write(exp));
                    return;
                }
            }
            Object value = m.get("value");
            Lease lease = null;
            try {
                String json = value instanceof String ? (String) value : Json.write(value);
                lease = new Lease(subnet, LeaseAttributes.parse(json), expires);
            } catch (OverlayException | IllegalArgumentException e) {
                problems.add("entry " + key + ": " + e.getMessage());
            }
            held.put(key, new Held(subnet, lease));
            expiry.put(key, expires);
        }

        /** The stored config, or {@code null} if the file has none. */
        public NetworkConfig config() {
            if (config == null) {
                return null;
            }
            return NetworkConfig.parse(Json.write(config));
        }

        /** Stores {@code c} as the file's config. */
        public void setConfig(NetworkConfig c) {
            config = new Json.Raw(c.toJson());
            dirty = true;
        }

        /** Descriptions of the entries that could not be read (skipped, but kept in the file). */
        public List<String> problems() {
            return Collections.unmodifiableList(problems);
        }

        /** Readable entries that are unexpired at {@code now}, in key order (as etcd lists them). */
        public List<Held> held(Instant now) {
            List<Held> out = new ArrayList<>();
            for (Map.Entry<String, Held> e : held.entrySet()) {
                Instant exp = expiry.get(e.getKey());
                if (exp == null || exp.isAfter(now)) {
                    out.add(e.getValue());
                }
            }
            return out;
        }

        /** All readable leases, including expired ones, in key order. */
        public List<Lease> allLeases() {
            List<Lease> out = new ArrayList<>();
            for (Held h : held.values()) {
                if (h.lease() != null) {
                    out.add(h.lease());
                }
            }
            return out;
        }

        /** The readable entry for exactly {@code subnet} unexpired at {@code now}, or {@code null}. */
        public Held get(Ipv4Prefix subnet, Instant now) {
            String key = subnet.toSubnetKey();
            Held h = held.get(key);
            Instant exp = expiry.get(key);
            return h == null || (exp != null && !exp.isAfter(now)) ? null : h;
        }

        /** Writes (creates or replaces) a lease. */
        public void put(Lease lease) {
            String key = lease.subnet().toSubnetKey();
            Map<String, Object> raw = new LinkedHashMap<>();
            raw.put("value", new Json.Raw(lease.attributes().toJson()));
            raw.put("expires", lease.expiration() == null ? null : lease.expiration().toString());
            entries.put(key, raw);
            held.put(key, new Held(lease.subnet(), lease));
            expiry.put(key, lease.expiration());
            dirty = true;
        }

        /** Deletes the entry for exactly {@code subnet}. */
        public void remove(Ipv4Prefix subnet) {
            String key = subnet.toSubnetKey();
            if (entries.remove(key) != null) {
                held.remove(key);
                expiry.remove(key);
                dirty = true;
            }
        }

        /** Deletes every entry (readable or not) whose expiry is at or before {@code now}. */
        public void purgeExpired(Instant now) {
            for (String key : new ArrayList<>(expiry.keySet())) {
                Instant exp = expiry.get(key);
                if (exp != null && !exp.isAfter(now)) {
                    entries.remove(key);
                    held.remove(key);
                    expiry.remove(key);
                    dirty = true;
                }
            }
        }

        private String serialize() {
            StringBuilder sb = new StringBuilder("{\"config\":");
            Json.write(sb, config);
            sb.append(",\n\"leases\":{");
            boolean first = true;
            for (Map.Entry<String, Object> e : entries.entrySet()) {
                sb.append(first ? "\n" : ",\n");
                first = false;
                Json.writeString(sb, e.getKey());
                sb.append(':');
                Json.write(sb, e.getValue());
            }
            return sb.append("}}\n").toString();
        }
    }

    /**
     * Reads the file without locking (writes are atomic renames).
     *
     * @param bytes the file's bytes, from {@link #readBytes()}; {@code null} for a missing file
     * @throws OverlayException {@code STORE_CORRUPT} if the file as a whole cannot be read
     */
    public State parse(byte[] bytes) {
        if (bytes == null) {
            return new State(null, new LinkedHashMap<>());
        }
        String text = new String(bytes, StandardCharsets.UTF_8);
        if (text.isBlank()) {
            return new State(null, new LinkedHashMap<>());
        }
        Map<String, Object> top;
        try {
            top = Json.parseObject(text);
        } catch (IllegalArgumentException e) {
            throw new OverlayException(Kind.STORE_CORRUPT, file + " is not a valid lease file: " + e.getMessage(), e);
        }
        Object leases = top.get("leases");
        if (leases != null && !(leases instanceof Map)) {
            throw new OverlayException(Kind.STORE_CORRUPT, file + " is not a valid lease file: \"leases\" is "
                    + Json.typeName(leases) + ", not an object");
        }
        Object config = top.get("config");
        if (config != null && !(config instanceof Map)) {
            throw new OverlayException(Kind.STORE_CORRUPT, file + " is not a valid lease file: \"config\" is "
                    + Json.typeName(config) + ", not an object");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> entries = leases == null ? new LinkedHashMap<>() : (Map<String, Object>) leases;
        return new State(config, entries);
    }

    /**
     * The file's bytes, or {@code null} if it does not exist.
     *
     * @throws OverlayException {@code STORE_UNAVAILABLE} if it cannot be read
     */
    public byte[] readBytes() {
        try {
            return Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new OverlayException(Kind.STORE_UNAVAILABLE, "cannot read " + file + ": " + e, e);
        }
    }

    /** Reads and parses the file without locking. */
    public State read() {
        return parse(readBytes());
    }

    /**
     * Runs {@code change} on the current contents under the exclusive lock and writes the result atomically if it
     * changed anything (even when {@code change} then throws, changes made before the throw are discarded).
     *
     * @throws OverlayException {@code STORE_UNAVAILABLE} on I/O failure, or whatever {@code change} throws
     */
    public <T> T update(Function<State, T> change) {
        requireNonNull(change, "change");
        jvmLock.lock();
        try (FileChannel ch = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock ignored = ch.lock()) {
            State state = read();
            T result = change.apply(state);
            if (state.dirty) {
                write(state.serialize());
            }
            return result;
        } catch (IOException e) {
            throw new OverlayException(Kind.STORE_UNAVAILABLE, "cannot update " + file + ": " + e, e);
        } finally {
            jvmLock.unlock();
        }
    }

    private void write(String text) throws IOException {
        Path tmp = Files.createTempFile(file.getParent(), "." + file.getFileName(), ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ByteBuffer buf = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                ch.force(true);
            }
            try {
                Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-r--r--"));
            } catch (UnsupportedOperationException e) {
                // not a POSIX file system
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
