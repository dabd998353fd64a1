package io.overlay4j.tun.internal;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.lang.reflect.Field;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The native address of a direct {@link ByteBuffer}, read without allocating. Internal use only.
 *
 * <p>Uses {@code sun.misc.Unsafe} (module {@code jdk.unsupported}, readable without flags) to read the private
 * {@code Buffer.address} field; falls back to JNA's {@link Native#getDirectBufferPointer}, which allocates a
 * {@link Pointer}, if that is not possible.
 */
public final class DirectBuffers {
    private static final Logger LOG = LoggerFactory.getLogger(DirectBuffers.class);
    private static final sun.misc.Unsafe UNSAFE;
    private static final long ADDRESS_OFFSET;

    static {
        sun.misc.Unsafe unsafe = null;
        long offset = -1;
        try {
            Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
            f.setAccessible(true);
            unsafe = (sun.misc.Unsafe) f.get(null);
            offset = unsafe.objectFieldOffset(Buffer.class.getDeclaredField("address"));
        } catch (ReflectiveOperationException | RuntimeException e) {
            LOG.debug("sun.misc.Unsafe unavailable, direct buffer addresses go through JNA (allocates)", e);
            unsafe = null;
        }
        UNSAFE = unsafe;
        ADDRESS_OFFSET = offset;
    }

    private DirectBuffers() {
    }

    /** Whether {@link #getLong(long)} may be used (sun.misc.Unsafe is reachable). */
    public static boolean rawAccess() {
        return UNSAFE != null;
    }

    /**
     * Reads 8 bytes at a native address in the CPU's byte order, with no bounds check: the caller has checked that the
     * address lies inside a live direct buffer it holds. Only when {@link #rawAccess()} is true.
     */
    public static long getLong(long address) {
        return UNSAFE.getLong(address);
    }

    /** As {@link #getLong(long)}, 4 bytes. */
    public static int getInt(long address) {
        return UNSAFE.getInt(address);
    }

    /**
     * The native address of {@code buffer}'s first byte (index 0, not its position).
     *
     * @throws IllegalArgumentException if the buffer is not direct
     */
    public static long address(ByteBuffer buffer) {
        if (!buffer.isDirect()) {
            throw new IllegalArgumentException("not a direct buffer");
        }
        if (UNSAFE != null) {
            return UNSAFE.getLong(buffer, ADDRESS_OFFSET);
        }
        return Pointer.nativeValue(Native.getDirectBufferPointer(buffer));
    }
}
