package io.overlay4j.overlayd;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * {@code overlayd}: a drop-in for flanneld in etcd mode, built on overlay4j. It takes flanneld's flags (in Go's forms)
 * and {@code FLANNELD_*} variables, so an existing flanneld unit file starts it unchanged; see {@code overlayd --help}.
 *
 * <pre>
 * overlayd -etcd-endpoints=http://10.0.0.1:2379 -iface=eth0 -ip-masq
 * overlayd cni-conflist [-subnet-file /run/flannel/subnet.env] [-name overlay]   # CNI config from subnet.env
 * </pre>
 *
 * <p>Exit status: 0 after SIGTERM or SIGINT, 1 when it cannot start (or its subnet changed under it), 2 for a bad
 * command line.
 */
public final class Overlayd {
    /** Exit status for a bad command line, as Go's flag package. */
    static final int EXIT_USAGE = 2;

    private Overlayd() {
    }

    /** Runs the daemon (or {@code cni-conflist}); exits with its status. */
    public static void main(String[] args) {
        System.exit(run(Arrays.asList(args), System.getenv(), System.out, System.err));
    }

    /** Everything {@link #main} does but the exit: returns the status. */
    static int run(List<String> args, Map<String, String> env, PrintStream out, PrintStream err) {
        if (!args.isEmpty() && CniConflist.COMMAND.equals(args.get(0))) {
            return CniConflist.run(args.subList(1, args.size()), out, err);
        }
        Options options;
        try {
            options = Options.parse(args, env);
        } catch (UsageException e) {
            err.println("overlayd: " + e.getMessage() + " (see overlayd -help)");
            return EXIT_USAGE;
        }
        if (options.help) {
            out.print(Flags.usage());
            return 0;
        }
        if (options.version) {
            out.println(version());
            return 0;
        }
        Logging.configure(options.logLevel);
        Daemon daemon = new Daemon(options, env);
        sun.misc.SignalHandler onSignal = s -> daemon.stop();
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), onSignal);
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), onSignal);
        org.slf4j.LoggerFactory.getLogger("overlayd").info("overlayd {} starting", version());
        return daemon.run();
    }

    /** The version the build stamped, e.g. {@code 0.1.0}. */
    static String version() {
        try (InputStream in = Overlayd.class.getResourceAsStream("version.properties")) {
            Properties p = new Properties();
            if (in != null) {
                p.load(in);
            }
            String v = p.getProperty("version", "");
            return v.isEmpty() || v.startsWith("${") ? "unknown" : v;
        } catch (IOException e) {
            return "unknown";
        }
    }
}
