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
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * flanneld's health server: {@code GET /healthz} is always {@code 200 flanneld is running}; {@code GET /readyz} is
 * {@code 200 flanneld is ready} while the daemon is ready and {@code 503 flanneld is not ready yet} otherwise (the same
 * bytes as flanneld, so probes written for it keep working). Beyond flanneld, {@code GET /metrics} answers with the
 * daemon's meters in Prometheus text format (version 0.0.4).
 */
final class HealthServer implements AutoCloseable {
    static final String RUNNING = "flanneld is running";
    static final String READY = "flanneld is ready";
    static final String NOT_READY = "flanneld is not ready yet";
    static final String METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
    private static final Logger log = LoggerFactory.getLogger("overlayd");

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
    static HealthServer start(String ip, int port, BooleanSupplier ready, Supplier<String> metrics)
            throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getByName(ip), port), 16);
        server.createContext("/healthz", ex -> reply(ex, 200, RUNNING));
        server.createContext("/readyz", ex -> {
            if (ready.getAsBoolean()) {
                reply(ex, 200, READY);
            } else {
                reply(ex, 503, NOT_READY);
            }
        });
        server.createContext("/metrics", ex -> {
            String text;
            try {
                text = metrics.get();
            } catch (RuntimeException e) {
                // A meter that fails must not take the health server down with it.
                log.warn("serving /metrics failed: {}", e.toString());
                reply(ex, 500, "metrics unavailable: " + e);
                return;
            }
            reply(ex, 200, METRICS_CONTENT_TYPE, text);
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
        reply(ex, status, "text/plain; charset=utf-8", body);
    }

    private static void reply(HttpExchange ex, int status, String contentType, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", contentType);
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
