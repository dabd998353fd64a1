package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.overlay4j.Ipv4Prefix;
import io.overlay4j.SubnetFile;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The conflist flannel's CNI plugin would hand its bridge delegate, from subnet.env. */
class CniConflistTest {
    @TempDir
    Path dir;

    @Test
    void bridgeAndHostLocalFromSubnetEnv() throws Exception {
        Path env = dir.resolve("subnet.env");
        Files.writeString(env, "FLANNEL_NETWORK=100.96.0.0/16\nFLANNEL_SUBNET=100.96.7.1/24\nFLANNEL_MTU=1472\n"
                + "FLANNEL_IPMASQ=true\n");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Overlayd.run(List.of("cni-conflist", "-subnet-file", env.toString(), "--name=ov"),
                java.util.Map.of(), new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(0, status, err.toString(StandardCharsets.UTF_8));
        String json = out.toString(StandardCharsets.UTF_8).replaceAll("\\s+", "");
        assertEquals("{\"cniVersion\":\"0.3.1\",\"name\":\"ov\",\"plugins\":[{\"type\":\"bridge\",\"bridge\":\"cni0\","
                + "\"isGateway\":true,\"isDefaultGateway\":true,\"hairpinMode\":true,\"ipMasq\":false,\"mtu\":1472,"
                + "\"ipam\":{\"type\":\"host-local\","
                + "\"ranges\":[[{\"subnet\":\"100.96.7.0/24\"}]],\"routes\":[{\"dst\":\"100.96.0.0/16\"}]}}]}", json);
    }

    @Test
    void masqueradesWhenOverlaydDoesNot() {
        String json = CniConflist.conflist(new SubnetFile.Contents(Ipv4Prefix.parse("10.5.0.0/16"),
                Ipv4Prefix.parse("10.5.34.0/24"), 1450, false), "n", "br0", "1.0.0", "/tmp/ipam", false);
        assertTrue(json.contains("\"ipMasq\": true"), json);
        assertTrue(json.contains("\"dataDir\": \"/tmp/ipam\""), json);
        assertTrue(json.contains("\"bridge\": \"br0\""), json);
        assertTrue(!json.contains("isDefaultGateway") && !json.contains("hairpinMode"), json);
    }

    @Test
    void missingSubnetEnvIsOneLine() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = Overlayd.run(List.of("cni-conflist", "-subnet-file", dir.resolve("none.env").toString()),
                java.util.Map.of(), new PrintStream(new ByteArrayOutputStream()),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        assertEquals(1, status);
        assertEquals(1, err.toString(StandardCharsets.UTF_8).lines().count());
    }
}
