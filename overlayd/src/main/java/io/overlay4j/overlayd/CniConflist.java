package io.overlay4j.overlayd;

import io.overlay4j.SubnetFile;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@code overlayd cni-conflist}: a CNI network configuration list for the reference {@code bridge} and
 * {@code host-local} plugins, made from subnet.env exactly as flannel's CNI plugin ({@code flannel-io/cni-plugin})
 * configures its delegate: the bridge is the containers' gateway ({@code isGateway}), with the network's MTU
 * ({@code FLANNEL_MTU}), masquerading only when overlayd does not ({@code ipMasq} = not {@code FLANNEL_IPMASQ}), and
 * host-local hands out the node's subnet ({@code FLANNEL_SUBNET}'s network) with a route to the whole overlay
 * ({@code FLANNEL_NETWORK}). As the conflist flannel ships for Kubernetes ({@code kube-flannel.yml}:
 * {@code "delegate": {"hairpinMode": true, "isDefaultGateway": true}}) the bridge is also the containers' default
 * route and hairpin mode is on, so containers reach addresses outside the overlay (masqueraded); {@code
 * -default-gateway=false} leaves both out (only the route to the overlay).
 *
 * <pre>
 * overlayd cni-conflist -name overlay &gt; /etc/cni/net.d/10-overlay.conflist
 * </pre>
 */
final class CniConflist {
    static final String COMMAND = "cni-conflist";
    private static final List<String> FLAGS = List.of("subnet-file", "name", "bridge", "cni-version", "data-dir",
            "default-gateway");

    private CniConflist() {
    }

    /**
     * The conflist.
     *
     * @param env        subnet.env's contents
     * @param name       the network name
     * @param bridge     the bridge device
     * @param cniVersion the CNI spec version
     * @param dataDir    host-local's data directory, or null for its default ({@code /var/lib/cni/networks})
     * @param defaultGateway whether the bridge is the containers' default route (and hairpin mode is on)
     */
    static String conflist(SubnetFile.Contents env, String name, String bridge, String cniVersion, String dataDir,
                           boolean defaultGateway) {
        StringBuilder sb = new StringBuilder();
        sb.append("{\n");
        sb.append("  \"cniVersion\": ").append(quote(cniVersion)).append(",\n");
        sb.append("  \"name\": ").append(quote(name)).append(",\n");
        sb.append("  \"plugins\": [\n");
        sb.append("    {\n");
        sb.append("      \"type\": \"bridge\",\n");
        sb.append("      \"bridge\": ").append(quote(bridge)).append(",\n");
        sb.append("      \"isGateway\": true,\n");
        if (defaultGateway) {
            sb.append("      \"isDefaultGateway\": true,\n");
            sb.append("      \"hairpinMode\": true,\n");
        }
        sb.append("      \"ipMasq\": ").append(!env.ipMasq()).append(",\n");
        sb.append("      \"mtu\": ").append(env.mtu()).append(",\n");
        sb.append("      \"ipam\": {\n");
        sb.append("        \"type\": \"host-local\",\n");
        if (dataDir != null) {
            sb.append("        \"dataDir\": ").append(quote(dataDir)).append(",\n");
        }
        sb.append("        \"ranges\": [[{\"subnet\": ").append(quote(env.subnet().toString())).append("}]],\n");
        sb.append("        \"routes\": [{\"dst\": ").append(quote(env.network().toString())).append("}]\n");
        sb.append("      }\n");
        sb.append("    }\n");
        sb.append("  ]\n");
        sb.append("}\n");
        return sb.toString();
    }

    private static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    /** The subcommand: prints the conflist; 2 for bad flags, 1 when subnet.env is missing or incomplete. */
    static int run(List<String> args, PrintStream out, PrintStream err) {
        Map<String, String> v = new LinkedHashMap<>();
        v.put("subnet-file", "/run/flannel/subnet.env");
        v.put("name", "overlay");
        v.put("bridge", "cni0");
        v.put("cni-version", "0.3.1");
        v.put("default-gateway", "true");
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            String name = a.replaceFirst("^--?", "");
            if (name.equals("h") || name.equals("help")) {
                out.println("Usage: overlayd cni-conflist [-subnet-file F] [-name N] [-bridge B] [-cni-version V] "
                        + "[-data-dir D] [-default-gateway=false]\n"
                        + "Prints a CNI conflist (bridge + host-local) for the subnet in subnet.env "
                        + "(default /run/flannel/subnet.env).");
                return 0;
            }
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (!a.startsWith("-") || !FLAGS.contains(name)) {
                err.println("overlayd cni-conflist: unknown argument " + a + " (see overlayd cni-conflist -help)");
                return Overlayd.EXIT_USAGE;
            }
            if (value == null && name.equals("default-gateway")) {
                value = "true"; // a boolean, as Go's: -default-gateway or -default-gateway=false
            }
            if (value == null) {
                if (i + 1 >= args.size()) {
                    err.println("overlayd cni-conflist: flag needs an argument: -" + name);
                    return Overlayd.EXIT_USAGE;
                }
                value = args.get(++i);
            }
            v.put(name, value);
        }
        if (!List.of("true", "false").contains(v.get("default-gateway"))) {
            err.println("overlayd cni-conflist: invalid value for -default-gateway: " + v.get("default-gateway"));
            return Overlayd.EXIT_USAGE;
        }
        Path file = Path.of(v.get("subnet-file"));
        Optional<SubnetFile.Contents> env = SubnetFile.read(file);
        if (env.isEmpty()) {
            err.println("overlayd cni-conflist: " + file + " is missing or lacks FLANNEL_NETWORK, FLANNEL_SUBNET, "
                    + "FLANNEL_MTU or FLANNEL_IPMASQ (is overlayd running?)");
            return 1;
        }
        out.print(conflist(env.get(), v.get("name"), v.get("bridge"), v.get("cni-version"), v.get("data-dir"),
                Boolean.parseBoolean(v.get("default-gateway"))));
        return 0;
    }
}
