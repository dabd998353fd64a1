package io.overlay4j.overlayd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A process running in a named network namespace, started with {@code nsenter} (which execs the command itself, so
 * signals reach it directly), with its output in a log file. {@link #close()} kills it.
 */
final class NamespacedProcess implements AutoCloseable {
    private final String name;
    private final Process process;
    private final Path log;

    private NamespacedProcess(String name, Process process, Path log) {
        this.name = name;
        this.process = process;
        this.log = log;
    }

    /** Starts {@code command} in namespace {@code ns}, output to {@code log}. */
    static NamespacedProcess start(String name, String ns, Path log, List<String> command) throws IOException {
        return start(name, ns, log, command, Map.of());
    }

    /** As {@link #start(String, String, Path, List)}, with extra environment variables. */
    static NamespacedProcess start(String name, String ns, Path log, List<String> command, Map<String, String> env)
            throws IOException {
        List<String> cmd = new ArrayList<>(List.of("nsenter", "--net=/run/netns/" + ns, "--"));
        cmd.addAll(command);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().keySet().removeIf(k -> k.startsWith("FLANNELD_") || k.equals("NOTIFY_SOCKET"));
        pb.environment().putAll(env);
        return new NamespacedProcess(name, pb.start(), log);
    }

    /** Waits for the exit status (SIGKILL after {@code seconds}). */
    int waitFor(long seconds) throws InterruptedException {
        if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor();
            return -1;
        }
        return process.exitValue();
    }

    /** Runs a short command in a namespace and returns its output; fails on a non-zero exit. */
    static String run(String ns, String... command) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("nsenter", "--net=/run/netns/" + ns, "--"));
        cmd.addAll(List.of(command));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " failed: " + out);
        }
        return out;
    }

    /** Waits until the log contains {@code text}, or fails with the log's content. */
    void awaitLog(String text, long seconds) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!log().contains(text)) {
            if (!process.isAlive()) {
                throw new IOException(name + " exited with " + process.exitValue() + " before '" + text + "':\n"
                        + log());
            }
            if (System.nanoTime() > deadline) {
                throw new IOException(name + " did not print '" + text + "' within " + seconds + " s:\n" + log());
            }
            Thread.sleep(50);
        }
    }

    /** What the process printed so far. */
    String log() throws IOException {
        return Files.exists(log) ? Files.readString(log) : "";
    }

    /** Sends SIGTERM and waits for the exit status. */
    int terminate(long seconds) throws InterruptedException {
        process.destroy();
        if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor();
            return -1;
        }
        return process.exitValue();
    }

    /** Sends SIGKILL, as a crash would. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor();
    }

    boolean isAlive() {
        return process.isAlive();
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroyForcibly();
            try {
                process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
