/*
 * udp-poll-proxy: a reference for overlay-bench/e2e.sh's 'c-proxy' mode, written for overlay4j.
 *
 * A minimal flannel `udp` backend data plane in C, shaped like flanneld's own (a single thread, one poll(2) over the
 * TUN device and the UDP socket, then both directions drained until EAGAIN; one packet per system call; the TTL
 * decremented on the way out and on the way in; the UDP payload is the inner IPv4 packet). It gives the e2e
 * harness a same-run figure for "a C userspace proxy on this machine", where flanneld itself cannot be built.
 * Not part of the library: no admission checks, no ICMP replies, no offloads, fixed routes from the command line.
 *
 * usage: udp-poll-proxy TUN-NAME BIND-IP PORT SUBNET/LEN PEER-IP [SUBNET/LEN PEER-IP ...]
 * It creates TUN-NAME (IFF_TUN | IFF_NO_PI) and runs until killed; addresses, MTU and routes are the caller's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ROUTES 64

static struct {
    uint32_t net, mask;          /* host order */
    struct sockaddr_in peer;
} routes[MAX_ROUTES];
static int nroutes;

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Decrements the TTL of the IPv4 packet in buf, patching the header checksum (RFC 1624); 0 if it expired. */
static int ttl_ok(unsigned char *buf, ssize_t n) {
    if (n < 20 || (buf[0] >> 4) != 4 || buf[8] <= 1) {
        return 0;
    }
    buf[8]--;
    uint32_t sum = (uint32_t) ((buf[10] << 8) | buf[11]) + 0x0100; /* the TTL is the high byte of its word */
    sum = (sum & 0xffff) + (sum >> 16);
    buf[10] = (unsigned char) (sum >> 8);
    buf[11] = (unsigned char) sum;
    return 1;
}

static const struct sockaddr_in *route(const unsigned char *buf) {
    uint32_t dst = (uint32_t) buf[16] << 24 | (uint32_t) buf[17] << 16 | (uint32_t) buf[18] << 8 | buf[19];
    for (int i = 0; i < nroutes; i++) {
        if ((dst & routes[i].mask) == routes[i].net) {
            return &routes[i].peer;
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 6 || (argc - 4) % 2 != 0) {
        fprintf(stderr, "usage: %s TUN-NAME BIND-IP PORT SUBNET/LEN PEER-IP [SUBNET/LEN PEER-IP ...]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[3]);
    for (int i = 4; i + 1 < argc && nroutes < MAX_ROUTES; i += 2) {
        char net[32];
        snprintf(net, sizeof net, "%s", argv[i]);
        char *slash = strchr(net, '/');
        int len = slash ? atoi(slash + 1) : 32;
        if (slash) {
            *slash = 0;
        }
        struct in_addr a;
        if (inet_pton(AF_INET, net, &a) != 1 || len < 0 || len > 32) {
            fprintf(stderr, "bad subnet %s\n", argv[i]);
            return 2;
        }
        routes[nroutes].mask = len == 0 ? 0 : 0xffffffffu << (32 - len);
        routes[nroutes].net = ntohl(a.s_addr) & routes[nroutes].mask;
        routes[nroutes].peer.sin_family = AF_INET;
        routes[nroutes].peer.sin_port = htons((uint16_t) port);
        if (inet_pton(AF_INET, argv[i + 1], &routes[nroutes].peer.sin_addr) != 1) {
            fprintf(stderr, "bad peer %s\n", argv[i + 1]);
            return 2;
        }
        nroutes++;
    }

    int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun < 0) {
        die("open /dev/net/tun");
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[1]);
    if (ioctl(tun, TUNSETIFF, &ifr) < 0) {
        die("TUNSETIFF");
    }
    if (fcntl(tun, F_SETFL, O_NONBLOCK) < 0) {
        die("fcntl");
    }
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sock < 0) {
        die("socket");
    }
    struct sockaddr_in bind_addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    if (inet_pton(AF_INET, argv[2], &bind_addr.sin_addr) != 1) {
        fprintf(stderr, "bad bind address %s\n", argv[2]);
        return 2;
    }
    if (bind(sock, (struct sockaddr *) &bind_addr, sizeof bind_addr) < 0) {
        die("bind");
    }
    fprintf(stderr, "udp-poll-proxy: %s, %s:%d, %d routes\n", ifr.ifr_name, argv[2], port, nroutes);

    static unsigned char buf[65536];
    struct pollfd fds[2] = {{.fd = tun, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("poll");
        }
        int busy;
        do {
            busy = 0;
            ssize_t n = read(tun, buf, sizeof buf);
            if (n > 0) {
                busy = 1;
                const struct sockaddr_in *peer = n >= 20 ? route(buf) : NULL;
                if (peer && ttl_ok(buf, n)) {
                    sendto(sock, buf, (size_t) n, 0, (const struct sockaddr *) peer, sizeof *peer);
                }
            }
            n = recv(sock, buf, sizeof buf, 0);
            if (n > 0) {
                busy = 1;
                if (ttl_ok(buf, n)) {
                    write(tun, buf, (size_t) n);
                }
            }
        } while (busy);
    }
}
