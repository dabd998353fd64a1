package io.overlay4j.udp;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** A pooled allocator that remembers every buffer it handed out, so tests can assert they were all released. */
final class RecordingAllocator extends AbstractByteBufAllocator {
    final List<ByteBuf> buffers = new CopyOnWriteArrayList<>();

    RecordingAllocator() {
        super(true);
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        ByteBuf b = PooledByteBufAllocator.DEFAULT.heapBuffer(initialCapacity, maxCapacity);
        buffers.add(b);
        return b;
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        ByteBuf b = PooledByteBufAllocator.DEFAULT.directBuffer(initialCapacity, maxCapacity);
        buffers.add(b);
        return b;
    }

    @Override
    public boolean isDirectBufferPooled() {
        return true;
    }

    /** Whether every buffer handed out has been released (refCnt 0), and at least {@code atLeast} were. */
    boolean allReleased(int atLeast) {
        if (buffers.size() < atLeast) {
            return false;
        }
        for (ByteBuf b : buffers) {
            if (b.refCnt() != 0) {
                return false;
            }
        }
        return true;
    }
}
