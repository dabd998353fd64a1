package io.overlay4j.udp.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.overlay4j.udp.testing.TcpPackets;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class VirtioNetHeaderTest {
    @Test
    void fieldsAreInHostOrderWhateverTheBufferOrder() {
        byte[] expected = TcpPackets.vnet(1, 0x81, 0x1234, 1448, 20, 16);
        for (ByteOrder order : new ByteOrder[] {ByteOrder.BIG_ENDIAN, ByteOrder.LITTLE_ENDIAN}) {
            for (ByteBuffer b : new ByteBuffer[] {ByteBuffer.allocate(13), ByteBuffer.allocateDirect(13)}) {
                b.order(order);
                VirtioNetHeader.set(b, 3, VirtioNetHeader.FLAG_NEEDS_CSUM,
                        VirtioNetHeader.GSO_TCPV4 | VirtioNetHeader.GSO_ECN, 0x1234, 1448, 20, 16);
                byte[] got = new byte[10];
                b.get(3, got);
                assertArrayEquals(expected, got, order + " " + b);
                assertEquals(1, VirtioNetHeader.flags(b, 3));
                assertEquals(0x81, VirtioNetHeader.gsoType(b, 3));
                assertEquals(0x1234, VirtioNetHeader.hdrLen(b, 3));
                assertEquals(1448, VirtioNetHeader.gsoSize(b, 3));
                assertEquals(20, VirtioNetHeader.csumStart(b, 3));
                assertEquals(16, VirtioNetHeader.csumOffset(b, 3));
                VirtioNetHeader.gsoSize(b, 3, 0xfffe);
                assertEquals(0xfffe, VirtioNetHeader.gsoSize(b, 3), "unsigned");
                VirtioNetHeader.clear(b, 3);
                b.get(3, got);
                assertArrayEquals(new byte[10], got);
            }
        }
    }
}
