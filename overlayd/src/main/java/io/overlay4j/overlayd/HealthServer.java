package io.overlay4j.overlayd;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.BooleanSupplier;

/**
 * flanneld's health server: {@code GET /healthz} is always {@code 200 flanneld is running}; {@code GET /readyz} is
 * {@code 200 flanneld is ready} while the daemon is ready and {@code 503 flanneld is not ready yet} otherwise (the same
 * bytes as flanneld, so probes written for it keep working).
 */
final class HealthServer implements AutoCloseable {
    static final String RUNNING = "flanneld is running";
    static final String READY = "flanneld is ready";
    static final String NOT_READY = "flanneld is not ready yet";

    private final HttpServer server;
    private final ExecutorService executor;

    private HealthServer(HttpServer server, ExecutorService executor) {
        this.server = server;
        this.executor = executor;
    }

    /**
     * Binds and starts the server.
     *
     * @throws IOException if the address cannot be bound (in use, not local)
     */
    static HealthServer start(String ip, int port, BooleanSupplier ready) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getByName(ip), port), 16);
        server.createContext("/healthz", ex -> reply(ex, 200, RUNNING));
        server.createContext("/readyz", ex -> {
            if (ready.getAsBoolean()) {
                reply(ex, 200, READY);
            } else {
                reply(ex, 503, NOT_READY);
            }
        });
        ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "overlayd-healthz");
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(executor);
        server.start();
        return new HealthServer(server, executor);
    }

    private static void reply(HttpExchange ex, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    /** The bound port. */
    int port() {
        return server.getAddress().getPort();
    }

    /** Stops within 3 s, as flanneld's graceful shutdown. */
    @Override
    public void close() {
        server.stop(3);
        executor.shutdownNow();
    }
}
