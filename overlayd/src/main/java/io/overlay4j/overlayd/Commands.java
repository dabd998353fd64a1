package io.overlay4j.overlayd;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Runs the few host tools overlayd drives as flanneld does through its libraries ({@code iptables-restore},
 * {@code iptables-save}, {@code nft}, {@code ip}). Only the daemon runs programs; the overlay4j libraries do not.
 * A process inherits the calling thread's network namespace.
 */
final class Commands {
    private static final long TIMEOUT_SECONDS = 60;

    /** A finished command. */
    record Result(int exitCode, String stdout, String stderr) {
        boolean ok() {
            return exitCode == 0;
        }

        /** stderr, else stdout, trimmed to one line. */
        String message() {
            String s = stderr.isBlank() ? stdout : stderr;
            return s.strip().replace('\n', ' ');
        }
    }

    private final List<String> searchPath;

    /** Programs are looked up on {@code $PATH}, then in {@code /usr/sbin, /sbin, /usr/bin, /bin}. */
    Commands() {
        this(List.of((System.getenv().getOrDefault("PATH", "") + File.pathSeparator + "/usr/sbin:/sbin:/usr/bin:/bin")
                .split(File.pathSeparator)));
    }

    /** Programs are looked up in these directories only (tests). */
    Commands(List<String> searchPath) {
        this.searchPath = List.copyOf(searchPath);
    }

    /** The executable {@code name} in the search path, or empty. */
    Optional<Path> find(String name) {
        for (String dir : searchPath) {
            if (dir.isEmpty()) {
                continue;
            }
            Path p = Path.of(dir, name);
            if (Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /**
     * Runs {@code command} (its first element a name looked up by {@link #find}), feeding {@code stdin} if not null.
     *
     * @throws IOException if it cannot be started or does not finish within 60 s
     */
    Result run(List<String> command, String stdin) throws IOException {
        List<String> cmd = new ArrayList<>(command);
        cmd.set(0, find(cmd.get(0)).map(Path::toString).orElseThrow(() -> new IOException("the '" + command.get(0)
                + "' program is not installed")));
        Process p = new ProcessBuilder(cmd).start();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread errReader = new Thread(() -> copy(p.getErrorStream(), err), "overlayd-stderr-" + command.get(0));
        errReader.setDaemon(true);
        errReader.start();
        try (OutputStream in = p.getOutputStream()) {
            if (stdin != null) {
                in.write(stdin.getBytes(StandardCharsets.UTF_8));
            }
        } catch (IOException e) {
            // the program exited without reading everything; its status tells
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        copy(p.getInputStream(), out);
        try {
            if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", command) + " did not finish within " + TIMEOUT_SECONDS + " s");
            }
            errReader.join(5000);
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted running " + String.join(" ", command), e);
        }
        return new Result(p.exitValue(), out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** As {@link #run}, failing with the program's message on a non-zero status. */
    String check(List<String> command, String stdin) throws IOException {
        Result r = run(command, stdin);
        if (!r.ok()) {
            throw new IOException(String.join(" ", command) + " failed (exit " + r.exitCode() + "): " + r.message());
        }
        return r.stdout();
    }

    private static void copy(InputStream in, ByteArrayOutputStream out) {
        try (in) {
            in.transferTo(out);
        } catch (IOException e) {
            // the process went away; what was read so far is the output
        }
    }
}
