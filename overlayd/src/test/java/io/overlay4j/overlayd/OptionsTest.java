package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.net.InetAddresses;
import io.overlay4j.overlayd.Flags.Flag;
import io.overlay4j.overlayd.Flags.Kind;
import io.overlay4j.overlayd.Flags.Status;
import io.overlay4j.vxlan.VxlanBackend;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** flanneld's command line in Go's forms and as FLANNELD_* variables; usage errors are one line and status 2. */
class OptionsTest {

    private static Options parse(Map<String, String> env, String... args) {
        return Options.parse(List.of(args), env);
    }

    /** Runs overlayd's front end (no daemon is started for these inputs): status, stdout, stderr. */
    private record Run(int status, String out, String err) {
    }

    private static Run run(Map<String, String> env, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Overlayd.run(List.of(args), env, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void defaultsAreFlanneldDefaults() {
        Options o = parse(Map.of());
        assertEquals(List.of("http://127.0.0.1:4001", "http://127.0.0.1:2379"), o.etcdEndpoints);
        assertEquals("/coreos.com/network", o.etcdPrefix);
        assertEquals(Path.of("/run/flannel/subnet.env"), o.subnetFile);
        assertEquals(60, o.renewMarginMinutes);
        assertEquals(5, o.iptablesResyncSeconds);
        assertTrue(o.iptablesForwardRules);
        assertFalse(o.ipMasq);
        assertFalse(o.ipMasqFullyRandomDisable);
        assertFalse(o.blackholeRoute);
        assertEquals(0, o.healthzPort);
        assertEquals("0.0.0.0", o.healthzIp);
        assertEquals("info", o.logLevel);
        assertNull(o.publicIp);
        assertNull(o.udpOffloads);
        assertTrue(o.ifaces.isEmpty());
        assertEquals(VxlanBackend.DataPlane.AUTO, o.vxlanDataPlane, "the kernel's, userspace where it has no vxlan");
    }

    @Test
    void vxlanDataPlanes() {
        assertEquals(VxlanBackend.DataPlane.KERNEL, parse(Map.of(), "-vxlan-dataplane=kernel").vxlanDataPlane);
        assertEquals(VxlanBackend.DataPlane.USERSPACE, parse(Map.of(), "--vxlan-dataplane", "userspace")
                .vxlanDataPlane);
        assertEquals(VxlanBackend.DataPlane.AUTO, parse(Map.of(), "-vxlan-dataplane=auto").vxlanDataPlane);
        assertEquals(VxlanBackend.DataPlane.USERSPACE, parse(Map.of("FLANNELD_VXLAN_DATAPLANE", "Userspace"))
                .vxlanDataPlane);
        assertEquals(VxlanBackend.DataPlane.KERNEL, parse(Map.of("FLANNELD_VXLAN_DATAPLANE", "userspace"),
                "-vxlan-dataplane=kernel").vxlanDataPlane, "the flag wins over the variable");
    }

    @Test
    void goFlagForms() {
        Options o = parse(Map.of(), "-etcd-endpoints=http://10.0.0.1:2379,https://10.0.0.2:2379",
                "--etcd-prefix", "/x/network", "-iface", "eth1", "--iface=10.0.0.5", "-ip-masq", "-v=2",
                "-iptables-forward-rules=false", "--subnet-lease-renew-margin", "0x1e", "-healthz-port=010000",
                "--ip-masq-fully-random-disable=T", "-iface-regex", "^10\\.", "-iface-can-reach=10.0.0.1");
        assertEquals(List.of("http://10.0.0.1:2379", "https://10.0.0.2:2379"), o.etcdEndpoints);
        assertEquals("/x/network", o.etcdPrefix);
        assertEquals(List.of("eth1", "10.0.0.5"), o.ifaces);
        assertTrue(o.ipMasq);
        assertEquals("debug", o.logLevel);
        assertFalse(o.iptablesForwardRules);
        assertEquals(30, o.renewMarginMinutes);
        assertEquals(4096, o.healthzPort); // Go reads a leading 0 as octal
        assertTrue(o.ipMasqFullyRandomDisable);
        assertEquals("^10\\.", o.ifaceRegexes.get(0).pattern());
        assertEquals(InetAddresses.forString("10.0.0.1"), o.ifaceCanReach);
    }

    @Test
    void verbosityMapsToLevelsAndLogLevelWins() {
        assertEquals("info", parse(Map.of(), "-v=0").logLevel);
        assertEquals("debug", parse(Map.of(), "-v", "3").logLevel);
        assertEquals("trace", parse(Map.of(), "--v=10").logLevel);
        assertEquals("warn", parse(Map.of(), "-v=10", "-log-level=WARNING").logLevel);
        assertEquals("debug", parse(Map.of("FLANNELD_V", "2")).logLevel);
    }

    @Test
    void environmentAndTheCommandLineWins() {
        Options o = parse(Map.of("FLANNELD_ETCD_ENDPOINTS", "http://127.0.0.1:12379",
                "FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "30", "FLANNELD_IP_MASQ", "true", "FLANNELD_IFACE", "eth9",
                "FLANNELD_ETCD_PREFIX", ""), "--subnet-lease-renew-margin=45", "-iface", "eth1");
        assertEquals(List.of("http://127.0.0.1:12379"), o.etcdEndpoints);
        assertEquals(45, o.renewMarginMinutes);
        assertTrue(o.ipMasq);
        assertEquals(List.of("eth1"), o.ifaces, "a repeatable flag on the command line replaces the variable");
        assertEquals("/coreos.com/network", o.etcdPrefix, "an empty variable is ignored, as flanneld's");
    }

    /** A valid non-default value for every implemented flag, and what it sets. */
    private static final Map<String, String> SAMPLE = new HashMap<>();

    static {
        SAMPLE.put("etcd-endpoints", "http://192.0.2.1:2379");
        SAMPLE.put("etcd-prefix", "/sample/network");
        SAMPLE.put("etcd-keyfile", "/k.pem");
        SAMPLE.put("etcd-certfile", "/c.pem");
        SAMPLE.put("etcd-cafile", "/ca.pem");
        SAMPLE.put("etcd-username", "u");
        SAMPLE.put("etcd-password", "p");
        SAMPLE.put("iface", "eth7");
        SAMPLE.put("iface-regex", "^eth");
        SAMPLE.put("iface-can-reach", "192.0.2.9");
        SAMPLE.put("subnet-file", "/tmp/sample.env");
        SAMPLE.put("public-ip", "192.0.2.4");
        SAMPLE.put("subnet-lease-renew-margin", "7");
        SAMPLE.put("ip-masq", "true");
        SAMPLE.put("ip-masq-fully-random-disable", "true");
        SAMPLE.put("iptables-resync", "9");
        SAMPLE.put("iptables-forward-rules", "false");
        SAMPLE.put("ip-blackhole-route", "true");
        SAMPLE.put("healthz-ip", "127.0.0.1");
        SAMPLE.put("healthz-port", "8471");
        SAMPLE.put("v", "4");
        SAMPLE.put("log-level", "error");
        SAMPLE.put("udp-offloads", "false");
        SAMPLE.put("vxlan-dataplane", "userspace");
        SAMPLE.put("version", "true");
        SAMPLE.put("help", "true");
    }

    /** The fields a flag sets, as text, for comparing a command-line parse with an environment parse. */
    private static String state(Options o) {
        return String.join("|", o.etcdEndpoints.toString(), o.etcdPrefix, o.etcdKeyFile, o.etcdCertFile, o.etcdCaFile,
                o.etcdUsername, o.etcdPassword, o.ifaces.toString(), o.ifaceRegexes.toString(),
                String.valueOf(o.ifaceCanReach), o.subnetFile.toString(), String.valueOf(o.publicIp),
                String.valueOf(o.renewMarginMinutes), String.valueOf(o.ipMasq),
                String.valueOf(o.ipMasqFullyRandomDisable), String.valueOf(o.iptablesResyncSeconds),
                String.valueOf(o.iptablesForwardRules), String.valueOf(o.blackholeRoute), o.healthzIp,
                String.valueOf(o.healthzPort), o.logLevel, String.valueOf(o.udpOffloads), String.valueOf(o.version),
                String.valueOf(o.help), o.kubernetesOnly.toString(), String.valueOf(o.vxlanDataPlane));
    }

    @Test
    void everySupportedVariableIsHonoured() {
        String defaults = state(parse(Map.of()));
        for (Flag flag : Flags.ALL) {
            if (flag.status() == Status.REFUSED || flag.status() == Status.KUBERNETES_ONLY) {
                continue;
            }
            String value = SAMPLE.get(flag.name());
            assertTrue(value != null, "no sample value for -" + flag.name());
            String viaFlag = state(parse(Map.of(), "-" + flag.name() + "=" + value));
            String viaEnv = state(parse(Map.of(flag.env(), value)));
            assertFalse(defaults.equals(viaFlag), "-" + flag.name() + "=" + value + " changed nothing");
            assertEquals(viaFlag, viaEnv, flag.env() + " must act as -" + flag.name());
        }
    }

    @Test
    void kubernetesOnlyFlagsAreAcceptedAndNoted() {
        Options o = parse(Map.of("FLANNELD_NET_CONFIG_PATH", "/etc/x.json"), "-kube-api-url=https://k:6443",
                "-kube-annotation-prefix=flannel.alpha.coreos.com", "-set-node-network-unavailable=true");
        assertEquals(List.of("flag -kube-api-url", "FLANNELD_NET_CONFIG_PATH"), o.kubernetesOnly);
        // At their defaults the refused flags are accepted, as a flanneld unit file may spell them out.
        parse(Map.of(), "-kube-subnet-mgr=false", "-public-ipv6=", "-vmodule=", "-log_backtrace_at=:0");
    }

    private static void assertUsage(Run r, String expected) {
        assertEquals(2, r.status, r.err);
        assertEquals("", r.out);
        List<String> lines = r.err.lines().toList();
        assertEquals(1, lines.size(), "one line: " + r.err);
        assertTrue(lines.get(0).startsWith("overlayd: ") && lines.get(0).contains(expected), r.err);
    }

    @Test
    void unknownOrUnsupportedFlagsExitTwoWithOneLine() {
        Map<String, String> none = Map.of();
        assertUsage(run(none, "-nope"), "flag provided but not defined: -nope");
        assertUsage(run(none, "--remote=10.0.0.1:8080"), "flag provided but not defined: -remote");
        assertUsage(run(none, "-kube-subnet-mgr"), "flag -kube-subnet-mgr: Kubernetes mode is not supported yet");
        assertUsage(run(Map.of("FLANNELD_KUBE_SUBNET_MGR", "true")),
                "FLANNELD_KUBE_SUBNET_MGR: Kubernetes mode is not supported yet");
        assertUsage(run(none, "-public-ipv6=fc00::1"), "flag -public-ipv6: IPv6 is not supported yet");
        assertUsage(run(none, "-vmodule=main=4"), "flag -vmodule: per-file log levels are klog's");
        assertUsage(run(none, "-log_backtrace_at=main.go:10"), "flag -log_backtrace_at: stack traces");
        assertUsage(run(none, "eth0"), "unexpected argument 'eth0'");
        assertUsage(run(none, "---iface=eth0"), "bad flag syntax: ---iface=eth0");
        assertUsage(run(none, "-etcd-prefix"), "flag needs an argument: -etcd-prefix");
        assertUsage(run(none, "-"), "unexpected argument '-'");
        assertUsage(run(none, "-ip-masq", "--", "eth0"), "unexpected argument 'eth0'");
        assertTrue(parse(Map.of(), "-ip-masq", "--").ipMasq, "-- ends the flags");
        // A boolean never takes the next argument: "true" is then a stray argument, as in Go.
        assertUsage(run(none, "-ip-masq", "true"), "unexpected argument 'true'");
        // A non-boolean takes the next argument even if it starts with a dash, as in Go.
        assertEquals("-weird", parse(Map.of(), "-etcd-username", "-weird").etcdUsername);
    }

    @Test
    void badValuesAreUsageErrors() {
        Map<String, String> none = Map.of();
        assertUsage(run(none, "-etcd-prefix=coreos.com/network"),
                "invalid value \"coreos.com/network\" for flag -etcd-prefix: the etcd prefix must be an absolute");
        assertUsage(run(Map.of("FLANNELD_ETCD_PREFIX", "x")), "for FLANNELD_ETCD_PREFIX");
        assertUsage(run(none, "-subnet-lease-renew-margin=1440"), "out of range 1..1439");
        assertUsage(run(none, "-subnet-lease-renew-margin", "0"), "out of range 1..1439");
        assertUsage(run(none, "-subnet-lease-renew-margin=soon"), "want a whole number");
        assertUsage(run(none, "-ip-masq=yes"), "invalid value \"yes\" for flag -ip-masq");
        assertUsage(run(none, "-public-ip=host.example"), "not an IPv4 address");
        assertUsage(run(none, "-iface-can-reach=fc00::1"), "not an IPv4 address");
        assertUsage(run(none, "-iface-regex=eth["), "not a regular expression");
        assertUsage(run(none, "-etcd-endpoints=127.0.0.1:2379"), "is not an http:// or https:// URL");
        assertUsage(run(none, "-etcd-endpoints=http://a:2379,"), "'' is not an http");
        assertUsage(run(none, "-healthz-port=70000"), "out of range 0..65535");
        assertUsage(run(none, "-healthz-ip=localhost"), "not an IP address");
        assertUsage(run(none, "-iptables-resync=0"), "out of range 1..86400");
        assertUsage(run(none, "-log-level=loud"), "want error, warn, info, debug or trace");
        assertUsage(run(none, "-vxlan-dataplane=fast"), "want kernel, userspace or auto");
        assertUsage(run(Map.of("FLANNELD_VXLAN_DATAPLANE", "tun")), "want kernel, userspace or auto");
    }

    @Test
    void helpListsEveryFlagWithItsVariable() {
        Run r = run(Map.of(), "--help");
        assertEquals(0, r.status);
        for (Flag flag : Flags.ALL) {
            assertTrue(r.out.contains("  -" + flag.name() + (flag.kind() == Kind.BOOL ? "" : " ")), flag.name());
            assertTrue(r.out.contains("(" + flag.env() + ")"), flag.env());
        }
        assertEquals(r.out, run(Map.of(), "-h").out);
        Run v = run(Map.of(), "-version");
        assertEquals(0, v.status);
        assertEquals(System.getProperty("overlayd.version", Overlayd.version()), v.out.strip());
    }

    @Test
    void flagTableCoversFlanneld() {
        // Every flag of flanneld v0.20.2 and v0.28.9 (main.go, plus klog's -v, -vmodule, -log_backtrace_at).
        List<String> flanneld = new ArrayList<>(List.of("etcd-endpoints", "etcd-prefix", "etcd-keyfile",
                "etcd-certfile", "etcd-cafile", "etcd-username", "etcd-password", "iface", "iface-regex",
                "iface-can-reach", "subnet-file", "public-ip", "public-ipv6", "subnet-lease-renew-margin", "ip-masq",
                "ip-masq-fully-random-disable", "kube-subnet-mgr", "kube-api-url", "kube-annotation-prefix",
                "kubeconfig-file", "version", "healthz-ip", "healthz-port", "iptables-resync",
                "iptables-forward-rules", "ip-blackhole-route", "net-config-path", "set-node-network-unavailable", "v",
                "vmodule", "log_backtrace_at"));
        for (String name : flanneld) {
            assertTrue(Flags.lookup(name) != null, "missing flanneld flag -" + name);
        }
        assertEquals("FLANNELD_LOG_BACKTRACE_AT", Flags.envName("log_backtrace_at"));
        assertEquals("FLANNELD_IP_MASQ_FULLY_RANDOM_DISABLE", Flags.envName("ip-masq-fully-random-disable"));
    }
}
