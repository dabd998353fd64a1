package io.overlay4j.bench.fuzz;

/** The wire formats the fuzzer speaks: what an overlay4j node's UDP port expects. */
public enum Encapsulation {
    /** flannel's udp backend: the datagram is the inner IPv4 packet; port 8285. */
    FLANNEL_UDP("udp", 8285, 0),
    /** VXLAN as the kernel and {@code VxlanEncapsulator} put it on the wire: 8 + 14 header bytes; port 8472. */
    VXLAN("vxlan", 8472, 22);

    private final String label;
    private final int defaultPort;
    private final int headroom;

    Encapsulation(String label, int defaultPort, int headroom) {
        this.label = label;
        this.defaultPort = defaultPort;
        this.headroom = headroom;
    }

    /** The command-line name: {@code udp} or {@code vxlan}. */
    public String label() {
        return label;
    }

    /** The port nodes listen on by default. */
    public int defaultPort() {
        return defaultPort;
    }

    /** Bytes in front of the inner IPv4 packet. */
    public int headroom() {
        return headroom;
    }

    /** The encapsulation named {@code udp} (or {@code flannel-udp}) or {@code vxlan}. */
    public static Encapsulation parse(String name) {
        switch (name) {
            case "udp":
            case "flannel-udp":
                return FLANNEL_UDP;
            case "vxlan":
                return VXLAN;
            default:
                throw new IllegalArgumentException("encapsulation must be udp or vxlan: " + name);
        }
    }
}
