package io.overlay4j.tun.internal;

import com.sun.jna.Native;
import com.sun.jna.Pointer;

/**
 * JNA direct mapping of the libc calls overlay4j needs. Internal use only.
 *
 * <p>Convention: every call returns -1 on failure and the caller reads errno with {@link #errno()} (JNA preserves it
 * per thread right after the call). No call throws, so the data path ({@link #read}, {@link #write}, {@link #poll})
 * allocates nothing, not even on EAGAIN. Pointer parameters on the data path are raw native addresses ({@code long});
 * this class assumes 64-bit Linux ({@code size_t} and pointers are 64 bits). No logic lives here: see {@link Errno}
 * for turning errno into exceptions.
 */
public final class LibC {
    static {
        Native.register("c");
    }

    private LibC() {
    }

    // <fcntl.h> / <asm-generic/fcntl.h>
    /** {@code O_RDONLY}. */
    public static final int O_RDONLY = 0;
    /** {@code O_RDWR}. */
    public static final int O_RDWR = 2;
    /** {@code O_NONBLOCK}. */
    public static final int O_NONBLOCK = 0x800;
    /** {@code O_CLOEXEC}. */
    public static final int O_CLOEXEC = 0x80000;

    // <poll.h>
    /** {@code POLLIN}. */
    public static final short POLLIN = 0x1;
    /** {@code POLLOUT}. */
    public static final short POLLOUT = 0x4;
    /** {@code POLLERR}. */
    public static final short POLLERR = 0x8;
    /** {@code POLLHUP}. */
    public static final short POLLHUP = 0x10;
    /** {@code POLLNVAL}. */
    public static final short POLLNVAL = 0x20;
    /** {@code sizeof(struct pollfd)}: int fd, short events, short revents. */
    public static final int POLLFD_SIZE = 8;

    // <sys/eventfd.h>
    /** {@code EFD_NONBLOCK}. */
    public static final int EFD_NONBLOCK = O_NONBLOCK;
    /** {@code EFD_CLOEXEC}. */
    public static final int EFD_CLOEXEC = O_CLOEXEC;

    // <linux/sched.h>
    /** {@code CLONE_NEWNET}. */
    public static final int CLONE_NEWNET = 0x40000000;

    // <linux/mount.h>
    /** {@code MS_BIND}. */
    public static final long MS_BIND = 4096;
    /** {@code MS_REC}. */
    public static final long MS_REC = 16384;
    /** {@code MS_SHARED}. */
    public static final long MS_SHARED = 1 << 20;
    /** {@code MNT_DETACH} for umount2. */
    public static final int MNT_DETACH = 2;

    // <bits/socket.h>, <linux/socket.h>
    /** {@code AF_UNSPEC}. */
    public static final int AF_UNSPEC = 0;
    /** {@code AF_INET}. */
    public static final int AF_INET = 2;
    /** {@code AF_UNIX}. */
    public static final int AF_UNIX = 1;
    /** {@code SOCK_SEQPACKET}: message boundaries kept, as a TUN keeps packets. */
    public static final int SOCK_SEQPACKET = 5;
    /** {@code AF_NETLINK}. */
    public static final int AF_NETLINK = 16;
    /** {@code SOCK_DGRAM}. */
    public static final int SOCK_DGRAM = 2;
    /** {@code SOCK_RAW}. */
    public static final int SOCK_RAW = 3;
    /** {@code SOCK_CLOEXEC}. */
    public static final int SOCK_CLOEXEC = O_CLOEXEC;
    /** {@code SOL_SOCKET}. */
    public static final int SOL_SOCKET = 1;
    /** {@code SO_SNDBUF}. */
    public static final int SO_SNDBUF = 7;
    /** {@code SO_RCVBUF}. */
    public static final int SO_RCVBUF = 8;
    /** {@code SO_RCVTIMEO} (struct timeval: long seconds, long microseconds). */
    public static final int SO_RCVTIMEO = 20;
    /** {@code SOL_NETLINK}. */
    public static final int SOL_NETLINK = 270;
    /** {@code MSG_TRUNC}: recv returns the real length of a datagram longer than the buffer. */
    public static final int MSG_TRUNC = 0x20;
    /** {@code SOCK_NONBLOCK}. */
    public static final int SOCK_NONBLOCK = O_NONBLOCK;
    /** {@code MSG_DONTWAIT}: this one call does not block. */
    public static final int MSG_DONTWAIT = 0x40;
    /** {@code SHUT_RD}. */
    public static final int SHUT_RD = 0;
    /** {@code SO_SNDBUFFORCE}: {@code SO_SNDBUF} above {@code wmem_max}, needs CAP_NET_ADMIN. */
    public static final int SO_SNDBUFFORCE = 32;
    /** {@code SO_RCVBUFFORCE}: {@code SO_RCVBUF} above {@code rmem_max}, needs CAP_NET_ADMIN. */
    public static final int SO_RCVBUFFORCE = 33;
    /** {@code MSG_CTRUNC}: the control buffer was too short for all control messages. */
    public static final int MSG_CTRUNC = 0x8;
    /** {@code sizeof(struct msghdr)} on 64-bit Linux. */
    public static final int MSGHDR_SIZE = 56;
    /** Offset of {@code msg_name} in {@code struct msghdr}. */
    public static final int MSGHDR_NAME = 0;
    /** Offset of {@code msg_namelen} (socklen_t) in {@code struct msghdr}. */
    public static final int MSGHDR_NAMELEN = 8;
    /** Offset of {@code msg_iov} in {@code struct msghdr}. */
    public static final int MSGHDR_IOV = 16;
    /** Offset of {@code msg_iovlen} (size_t) in {@code struct msghdr}. */
    public static final int MSGHDR_IOVLEN = 24;
    /** Offset of {@code msg_control} in {@code struct msghdr}. */
    public static final int MSGHDR_CONTROL = 32;
    /** Offset of {@code msg_controllen} (size_t) in {@code struct msghdr}. */
    public static final int MSGHDR_CONTROLLEN = 40;
    /** Offset of {@code msg_flags} (int) in {@code struct msghdr}. */
    public static final int MSGHDR_FLAGS = 48;
    /** {@code sizeof(struct mmsghdr)} on 64-bit Linux: a msghdr, {@code unsigned int msg_len}, padding. */
    public static final int MMSGHDR_SIZE = 64;
    /** Offset of {@code msg_len} in {@code struct mmsghdr}. */
    public static final int MMSGHDR_LEN = 56;
    /** {@code sizeof(struct iovec)} on 64-bit Linux: {@code void *iov_base, size_t iov_len}. */
    public static final int IOVEC_SIZE = 16;
    /** {@code sizeof(struct cmsghdr)} on 64-bit Linux: {@code size_t cmsg_len, int cmsg_level, int cmsg_type}. */
    public static final int CMSGHDR_SIZE = 16;
    /** Offset of {@code cmsg_level} in {@code struct cmsghdr}. */
    public static final int CMSGHDR_LEVEL = 8;
    /** Offset of {@code cmsg_type} in {@code struct cmsghdr}. */
    public static final int CMSGHDR_TYPE = 12;

    // <netinet/in.h>, <linux/in.h>
    /** {@code IPPROTO_UDP}, also the socket option level {@code SOL_UDP}. */
    public static final int IPPROTO_UDP = 17;
    /** {@code sizeof(struct sockaddr_in)}: family (native u16), port (BE u16), address (BE u32), 8 zero bytes. */
    public static final int SOCKADDR_IN_SIZE = 16;

    // <linux/udp.h>
    /** {@code SOL_UDP}. */
    public static final int SOL_UDP = 17;
    /** {@code UDP_SEGMENT}: GSO segment size, a socket option and a {@code u16} control message. */
    public static final int UDP_SEGMENT = 103;
    /** {@code UDP_GRO}: deliver coalesced datagrams; the control message carries the segment size as int. */
    public static final int UDP_GRO = 104;

    // <asm-generic/errno.h>
    /** {@code ENOPROTOOPT}. */
    public static final int ENOPROTOOPT = 92;
    /** {@code EMSGSIZE}. */
    public static final int EMSGSIZE = 90;

    // <linux/netlink.h>
    /** {@code NETLINK_ROUTE}. */
    public static final int NETLINK_ROUTE = 0;
    /** {@code NETLINK_CAP_ACK}: errors do not echo the request. */
    public static final int NETLINK_CAP_ACK = 10;
    /** {@code NETLINK_EXT_ACK}: errors carry a message attribute. */
    public static final int NETLINK_EXT_ACK = 11;
    /** {@code sizeof(struct sockaddr_nl)}. */
    public static final int SOCKADDR_NL_SIZE = 12;

    // <linux/if_tun.h>
    /** {@code TUNSETIFF}. */
    public static final long TUNSETIFF = 0x400454caL;
    /** {@code IFF_TUN}. */
    public static final short IFF_TUN = 0x0001;
    /** {@code IFF_NO_PI}. */
    public static final short IFF_NO_PI = 0x1000;

    // <linux/sockios.h>
    /** {@code SIOCGIFMTU}. */
    public static final long SIOCGIFMTU = 0x8921;
    /** {@code SIOCSIFMTU}. */
    public static final long SIOCSIFMTU = 0x8922;
    /** {@code SIOCGIFINDEX}. */
    public static final long SIOCGIFINDEX = 0x8933;
    /** {@code SIOCSIFTXQLEN}. */
    public static final long SIOCSIFTXQLEN = 0x8943;

    // <net/if.h>
    /** {@code IFNAMSIZ}, including the terminating NUL. */
    public static final int IFNAMSIZ = 16;
    /** {@code sizeof(struct ifreq)} on 64-bit Linux. */
    public static final int IFREQ_SIZE = 40;
    /** Offset of the {@code ifr_ifru} union (flags, mtu, ifindex, qlen) in {@code struct ifreq}. */
    public static final int IFREQ_UNION_OFFSET = 16;

    /** {@code int open(const char *path, int flags, mode_t mode)}. */
    public static native int open(String path, int flags, int mode);

    /** {@code int close(int fd)}. */
    public static native int close(int fd);

    /** {@code ssize_t read(int fd, void *buf, size_t count)}, {@code buf} a native address. */
    public static native long read(int fd, long buf, long count);

    /** {@code ssize_t write(int fd, const void *buf, size_t count)}, {@code buf} a native address. */
    public static native long write(int fd, long buf, long count);

    /** {@code int ioctl(int fd, unsigned long request, void *arg)}. */
    public static native int ioctl(int fd, long request, Pointer arg);

    /** {@code int poll(struct pollfd *fds, nfds_t nfds, int timeout)}, {@code fds} a native address. */
    public static native int poll(long fds, long nfds, int timeout);

    /** {@code int eventfd(unsigned int initval, int flags)}. */
    public static native int eventfd(int initval, int flags);

    /** {@code int setns(int fd, int nstype)}. */
    public static native int setns(int fd, int nstype);

    /** {@code int unshare(int flags)}. */
    public static native int unshare(int flags);

    /** {@code int mount(const char *source, const char *target, const char *fstype, unsigned long flags, data)}. */
    public static native int mount(String source, String target, String fstype, long flags, Pointer data);

    /** {@code int umount2(const char *target, int flags)}. */
    public static native int umount2(String target, int flags);

    /** {@code int socket(int domain, int type, int protocol)}. */
    public static native int socket(int domain, int type, int protocol);

    /** {@code int socketpair(int domain, int type, int protocol, int sv[2])}, {@code sv} a native address. */
    public static native int socketpair(int domain, int type, int protocol, long sv);

    /** {@code int bind(int fd, const struct sockaddr *addr, socklen_t len)}, {@code addr} a native address. */
    public static native int bind(int fd, long addr, int len);

    /** {@code int getsockname(int fd, struct sockaddr *addr, socklen_t *len)}, both native addresses. */
    public static native int getsockname(int fd, long addr, long lenPtr);

    /** {@code int setsockopt(int fd, int level, int name, const void *value, socklen_t len)}. */
    public static native int setsockopt(int fd, int level, int name, long value, int len);

    /** {@code ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, len)}. */
    public static native long sendto(int fd, long buf, long len, int flags, long to, int toLen);

    /** {@code ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *len)}. */
    public static native long recvfrom(int fd, long buf, long len, int flags, long from, long fromLenPtr);

    /** {@code int getsockopt(int fd, int level, int name, void *value, socklen_t *len)}, native addresses. */
    public static native int getsockopt(int fd, int level, int name, long value, long lenPtr);

    /** {@code ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)}, {@code msg} a native address. */
    public static native long sendmsg(int fd, long msg, int flags);

    /** {@code ssize_t recvmsg(int fd, struct msghdr *msg, int flags)}, {@code msg} a native address. */
    public static native long recvmsg(int fd, long msg, int flags);

    /** {@code int sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags)}, a native address. */
    public static native int sendmmsg(int fd, long msgvec, int vlen, int flags);

    /** {@code int shutdown(int fd, int how)}. */
    public static native int shutdown(int fd, int how);

    /** {@code unsigned int if_nametoindex(const char *name)}: 0 if there is no such device. */
    public static native int if_nametoindex(String name);

    /** The calling thread's errno after the last native call made through JNA. */
    public static int errno() {
        return Native.getLastError();
    }
}
