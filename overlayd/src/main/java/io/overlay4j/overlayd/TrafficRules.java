package io.overlay4j.overlayd;

import io.overlay4j.Ipv4Prefix;
import java.io.IOException;

/**
 * flanneld's traffic manager ({@code pkg/trafficmngr}): the masquerade rules for {@code -ip-masq} and the FORWARD
 * accept rules for {@code -iptables-forward-rules}, in iptables ({@link IptablesRules}) or, when the network config
 * says {@code "EnableNFTables": true}, nftables ({@link NftablesRules}). Rules stay when the daemon exits, as
 * flanneld's do.
 */
interface TrafficRules {

    /** Removes what the other traffic manager may have left (flanneld restarted with the other choice). */
    void cleanUpOther();

    /**
     * Installs the masquerade rules for {@code network} and our {@code subnet}, after removing those of the previous
     * run when its network or subnet (from the old subnet.env, either may be null) differ.
     */
    void setupMasquerade(Ipv4Prefix network, Ipv4Prefix subnet, Ipv4Prefix previousNetwork, Ipv4Prefix previousSubnet,
                         boolean fullyRandomDisabled) throws IOException;

    /** Installs the FORWARD accept rules for {@code network}. */
    void setupForward(Ipv4Prefix network) throws IOException;

    /**
     * Checks that every installed rule is still there and restores them (in order) if any is missing.
     *
     * @return whether anything had to be restored
     */
    boolean ensure() throws IOException;
}
