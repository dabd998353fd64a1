package io.overlay4j.overlayd;

import java.util.logging.Level;
import java.util.logging.LogManager;
import org.slf4j.bridge.SLF4JBridgeHandler;

/**
 * The daemon's log lines: slf4j-simple on stderr (journald takes it under systemd), each line with an ISO-8601
 * timestamp, the level and the logger, e.g. {@code 2026-11-26T12:54:05.123+00:00 INFO overlayd - acquired lease...}.
 * The libraries' chatter (netty, grpc, vert.x, jetcd, the JDK's HTTP server) shows from warnings up unless the level
 * is trace, so {@code -v=2} from a flanneld unit file shows overlayd's and overlay4j's debug lines only; the JDK's
 * java.util.logging records (grpc, the HTTP server) go through the same backend.
 */
final class Logging {
    private static final String P = "org.slf4j.simpleLogger.";

    private Logging() {
    }

    /** Configures the backend; call before the first logger is created. {@code level}: error .. trace. */
    static void configure(String level) {
        System.setProperty(P + "defaultLogLevel", level);
        System.setProperty(P + "showDateTime", "true");
        System.setProperty(P + "dateTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX");
        System.setProperty(P + "showThreadName", "false");
        System.setProperty(P + "showShortLogName", "true");
        System.setProperty(P + "logFile", "System.err");
        boolean verbose = "trace".equals(level);
        for (String noisy : new String[] {"io.netty", "io.grpc", "io.vertx", "io.etcd", "httpserver", "sun",
            "com.sun", "jdk"}) {
            System.setProperty(P + "log." + noisy, verbose ? level : "warn");
        }
        LogManager.getLogManager().reset();
        SLF4JBridgeHandler.install();
        java.util.logging.Logger.getLogger("").setLevel(verbose ? Level.FINE : Level.WARNING);
    }
}
