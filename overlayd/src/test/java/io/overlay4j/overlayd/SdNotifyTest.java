package io.overlay4j.overlayd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** sd_notify datagrams reach a socket bound as systemd binds $NOTIFY_SOCKET: a path, or an abstract name. */
class SdNotifyTest {
    @TempDir
    Path dir;

    @Test
    void toAPath() throws Exception {
        String path = dir.resolve("notify.sock").toString();
        try (NotifySocket socket = NotifySocket.bind(path)) {
            SdNotify n = new SdNotify(path);
            assertTrue(n.notify("READY=1"));
            assertEquals("READY=1", socket.receive(5000));
            assertTrue(n.notify("STOPPING=1"));
            assertEquals("STOPPING=1", socket.receive(5000));
        }
    }

    @Test
    void toAnAbstractName() throws Exception {
        String name = "@overlayd-test-" + Integer.toHexString(ThreadLocalRandom.current().nextInt());
        try (NotifySocket socket = NotifySocket.bind(name)) {
            assertTrue(new SdNotify(name).notify("READY=1"));
            assertEquals("READY=1", socket.receive(5000));
        }
    }

    @Test
    void withoutNotifySocketNothingIsSent() throws Exception {
        assertFalse(new SdNotify(null).notify("READY=1"));
        assertFalse(new SdNotify("").notify("READY=1"));
        assertThrows(IOException.class, () -> new SdNotify("relative.sock").notify("READY=1"));
        IOException e = assertThrows(IOException.class,
                () -> new SdNotify(dir.resolve("nobody.sock").toString()).notify("READY=1"));
        assertTrue(e.getMessage().contains("errno 2"), e.getMessage()); // ENOENT
    }
}
