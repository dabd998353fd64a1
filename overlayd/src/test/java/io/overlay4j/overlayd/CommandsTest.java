package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Missing programs are one clear error naming them and the Debian package, before any rule is attempted. */
class CommandsTest {
    @TempDir
    Path empty;

    @Test
    void missingIptablesOrNftIsOneClearError() {
        Commands none = new Commands(List.of(empty.toString()));
        IOException e = assertThrows(IOException.class, () -> IptablesRules.open(none));
        assertEquals("the iptables programs are not installed (iptables, iptables-save, iptables-restore missing; "
                + "Debian: apt-get install iptables)", e.getMessage());
        e = assertThrows(IOException.class, () -> NftablesRules.open(none));
        assertEquals("the nft program is not installed (the network config says EnableNFTables; Debian: apt-get "
                + "install nftables)", e.getMessage());
        e = assertThrows(IOException.class, () -> none.run(List.of("ip", "route"), null));
        assertEquals("the 'ip' program is not installed", e.getMessage());
    }
}
