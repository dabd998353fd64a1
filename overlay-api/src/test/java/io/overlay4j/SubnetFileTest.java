package io.overlay4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SubnetFileTest {
    @TempDir
    Path dir;

    private static final SubnetFile.Contents CONTENTS = new SubnetFile.Contents(Ipv4Prefix.parse("100.96.0.0/16"),
            Ipv4Prefix.parse("100.96.1.0/24"), 1472, false);

    @Test
    void formatsExactly() {
        assertEquals("FLANNEL_NETWORK=100.96.0.0/16\nFLANNEL_SUBNET=100.96.1.1/24\nFLANNEL_MTU=1472\n"
                + "FLANNEL_IPMASQ=false\n", CONTENTS.format());
        assertEquals("FLANNEL_NETWORK=10.5.0.0/28\nFLANNEL_SUBNET=10.5.0.5/30\nFLANNEL_MTU=1450\n"
                + "FLANNEL_IPMASQ=true\n", new SubnetFile.Contents(Ipv4Prefix.parse("10.5.0.0/28"),
                Ipv4Prefix.parse("10.5.0.4/30"), 1450, true).format());
    }

    @Test
    void rejectsBadContents() {
        assertThrows(IllegalArgumentException.class, () -> new SubnetFile.Contents(Ipv4Prefix.parse("10.0.0.0/8"),
                Ipv4Prefix.parse("10.0.0.1/32"), 1450, true));
        assertThrows(IllegalArgumentException.class, () -> new SubnetFile.Contents(Ipv4Prefix.parse("10.0.0.0/8"),
                Ipv4Prefix.parse("10.0.1.0/24"), 0, true));
    }

    @Test
    void writesAtomicallyWithModes() throws IOException {
        Path file = dir.resolve("run/flannel/subnet.env");
        SubnetFile.write(file, CONTENTS);
        assertEquals(CONTENTS.format(), Files.readString(file));
        assertEquals("rw-r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        assertEquals("rwxr-xr-x", PosixFilePermissions.toString(Files.getPosixFilePermissions(file.getParent())));
        SubnetFile.Contents other = new SubnetFile.Contents(CONTENTS.network(), Ipv4Prefix.parse("100.96.7.0/24"),
                1400, true);
        SubnetFile.write(file, other);
        assertEquals(other.format(), Files.readString(file));
        try (var s = Files.list(file.getParent())) {
            assertEquals(1, s.count(), "no temporary file left behind");
        }
    }

    @Test
    void readsBackWhatItWrote() throws IOException {
        Path file = dir.resolve("subnet.env");
        SubnetFile.write(file, CONTENTS);
        assertEquals(Optional.of(CONTENTS), SubnetFile.read(file));
        assertEquals(Optional.of(Ipv4Prefix.parse("100.96.1.0/24")), SubnetFile.readPreviousSubnet(file));
    }

    @Test
    void previousSubnetIsLenient() throws IOException {
        Path file = dir.resolve("subnet.env");
        assertEquals(Optional.empty(), SubnetFile.readPreviousSubnet(file));
        assertEquals(Optional.empty(), SubnetFile.read(file));
        Files.writeString(file, "# comment\nexport FLANNEL_SUBNET=\"10.5.52.1/24\"\n");
        assertEquals(Optional.of(Ipv4Prefix.parse("10.5.52.0/24")), SubnetFile.readPreviousSubnet(file));
        assertEquals(Optional.empty(), SubnetFile.read(file), "incomplete");
        Files.writeString(file, "FLANNEL_NETWORK=10.5.0.0/16\n");
        assertEquals(Optional.empty(), SubnetFile.readPreviousSubnet(file));
        Files.writeString(file, "FLANNEL_SUBNET=10.5.52.1/24,10.5.53.1/24\n");
        assertEquals(Optional.empty(), SubnetFile.readPreviousSubnet(file));
        Files.writeString(file, "FLANNEL_SUBNET=banana\n");
        assertEquals(Optional.empty(), SubnetFile.readPreviousSubnet(file));
        Files.writeString(file, "FLANNEL_SUBNET=fc00::1/64\n");
        assertEquals(Optional.empty(), SubnetFile.readPreviousSubnet(file));
        Files.createDirectory(dir.resolve("adir"));
        assertEquals(Optional.empty(), SubnetFile.readPreviousSubnet(dir.resolve("adir")));
    }

    @Test
    void readIsLenient() throws IOException {
        Path file = dir.resolve("subnet.env");
        Files.writeString(file, CONTENTS.format().replace("FLANNEL_MTU=1472", "FLANNEL_MTU=big"));
        assertEquals(Optional.empty(), SubnetFile.read(file));
        Files.writeString(file, CONTENTS.format().replace("=false", "=maybe"));
        assertEquals(Optional.empty(), SubnetFile.read(file));
        Files.writeString(file, CONTENTS.format().replace("=false", "=1").replace("\n", "\r\n"));
        assertTrue(SubnetFile.read(file).orElseThrow().ipMasq());
    }
}
