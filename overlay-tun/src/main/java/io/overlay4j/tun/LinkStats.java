package io.overlay4j.tun;

/**
 * A device's traffic counters from the kernel ({@code ip -s link}, {@code struct rtnl_link_stats64}).
 *
 * @param rxPackets packets received
 * @param txPackets packets sent
 * @param rxBytes   bytes received
 * @param txBytes   bytes sent
 * @param rxDropped received packets dropped
 * @param txDropped packets dropped on sending
 */
public record LinkStats(long rxPackets, long txPackets, long rxBytes, long txBytes, long rxDropped, long txDropped) {
}
