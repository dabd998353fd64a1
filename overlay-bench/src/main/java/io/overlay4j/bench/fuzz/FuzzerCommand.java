package io.overlay4j.bench.fuzz;

import io.overlay4j.Ipv4Prefix;
import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/** The command line of {@link DatagramFuzzer}. */
final class FuzzerCommand {
    static final String USAGE = """
            usage: java -cp benchmarks.jar io.overlay4j.bench.fuzz.DatagramFuzzer [options]

            Sends hostile datagrams at one overlay4j node's UDP port and prints how many of each case it sent and
            the verdict the node must reach for each (compare with the node's drop counters). Run it where the
            --from (and --stranger) addresses are local, e.g. with 'ip netns exec HOST'.

            The node:
              --encapsulation udp|vxlan  wire format (default udp: flannel udp on 8285; vxlan on 8472)
              --target ADDR[:PORT]       the node's underlay address (and port)          (required)
              --network CIDR             the overlay network                             (required)
              --target-subnet CIDR       the node's subnet                               (required)
              --mtu N                    the node's TUN MTU (default 1472 udp, 1450 vxlan)
              --victim ADDR              inner destination of what must be dropped (default subnet .2)
              --capture-port N           inner UDP destination port (default 9999)
              --vni N                    VXLAN network identifier (default 1)
              --target-mac MAC           the node's VtepMAC (vxlan, required)
            The senders:
              --from ADDR                a local address that is the PublicIP of a lease  (required)
              --from-subnet CIDR         that lease's subnet                              (required)
              --from-mac MAC             that lease's VtepMAC (vxlan, required)
              --from-port N              source port (default: the node's port for udp, any for vxlan)
              --stranger ADDR            a local address holding no lease (unknown-sender case; default: none)
              --other-subnet CIDR        another leased subnet, forged as source and destination
              --other-host ADDR          another host's underlay address, forged as destination
              --unleased-subnet CIDR     a subnet no lease holds (default: the last free one)
            The run:
              --count N                  datagrams to send (default 1000000)
              --duration SECONDS         stop after this long (default: no limit)
              --rate N                   at most N datagrams per second (default: unlimited)
              --seed N                   the same seed sends the same datagrams (default: random, printed)
              --no-gso                   no runs of equal-size datagrams with UDP GSO
            Exit status 0 when all was sent, 1 if sends failed, 2 for bad options. SIGTERM stops early and prints.
            """;

    private FuzzerCommand() {
    }

    static void main(String[] args) throws Exception {
        HostileDatagrams.Target.Builder t = HostileDatagrams.Target.builder();
        DatagramFuzzer.Builder f = DatagramFuzzer.builder();
        long count = 1_000_000;
        Duration duration = null;
        long seed = ThreadLocalRandom.current().nextLong();
        String target = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("--help")) {
                System.out.print(USAGE);
                return;
            }
            if (a.equals("--no-gso")) {
                f.gso(false);
                continue;
            }
            String v = need(a, i + 1 < args.length ? args[i + 1] : null);
            i++;
            try {
                switch (a) {
                    case "--encapsulation" -> t.encapsulation(Encapsulation.parse(v));
                    case "--target" -> target = v;
                    case "--network" -> t.network(Ipv4Prefix.parse(v));
                    case "--target-subnet" -> t.receiverSubnet(Ipv4Prefix.parse(v));
                    case "--mtu" -> t.mtu(Integer.parseInt(v));
                    case "--victim" -> t.victim(Ipv4Prefix.parseAddress(v));
                    case "--capture-port" -> t.capturePort(Integer.parseInt(v));
                    case "--vni" -> t.vni(Integer.parseInt(v));
                    case "--target-mac" -> t.receiverMac(v);
                    case "--from" -> t.senderAddress(Ipv4Prefix.parseAddress(v));
                    case "--from-subnet" -> t.senderSubnet(Ipv4Prefix.parse(v));
                    case "--from-mac" -> t.senderMac(v);
                    case "--from-port" -> f.leasedPort(Integer.parseInt(v));
                    case "--stranger" -> f.strangerAddress(Ipv4Prefix.parseAddress(v));
                    case "--other-subnet" -> t.otherSubnet(Ipv4Prefix.parse(v));
                    case "--other-host" -> t.otherHost(Ipv4Prefix.parseAddress(v));
                    case "--unleased-subnet" -> t.unleasedSubnet(Ipv4Prefix.parse(v));
                    case "--count" -> count = Long.parseLong(v);
                    case "--duration" -> duration = Duration.ofSeconds(Long.parseLong(v));
                    case "--rate" -> f.rate(Long.parseLong(v));
                    case "--seed" -> seed = Long.parseLong(v);
                    default -> usage("unknown option " + a);
                }
            } catch (IllegalArgumentException e) {
                usage(a + ": " + e.getMessage());
            }
        }
        if (target == null) {
            usage("--target is required");
        }
        int colon = target.indexOf(':');
        try {
            t.receiverAddress(Ipv4Prefix.parseAddress(colon < 0 ? target : target.substring(0, colon)));
            if (colon >= 0) {
                t.port(Integer.parseInt(target.substring(colon + 1)));
            }
        } catch (IllegalArgumentException e) {
            usage("--target: " + e.getMessage());
        }
        HostileDatagrams.Target built = null;
        try {
            built = t.build();
        } catch (IllegalArgumentException e) {
            usage(e.getMessage());
        }
        try (DatagramFuzzer fuzzer = f.target(built).seed(seed).build()) {
            sun.misc.SignalHandler onSignal = s -> fuzzer.stop();
            sun.misc.Signal.handle(new sun.misc.Signal("TERM"), onSignal);
            sun.misc.Signal.handle(new sun.misc.Signal("INT"), onSignal);
            System.out.println("FUZZING " + built + ", seed " + seed);
            System.out.flush();
            FuzzResult r = fuzzer.run(count, duration);
            System.out.println(r.table());
            System.out.println(r);
            System.out.flush();
            if (r.sendErrors() > 0) {
                System.exit(1);
            }
        }
    }

    static String need(String option, String value) {
        if (value == null) {
            usage(option + " needs a value");
        }
        return value;
    }

    static void usage(String problem) {
        System.err.println(problem);
        System.err.println("run with --help for the options");
        System.exit(2);
    }
}
