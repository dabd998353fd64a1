/*
 * wakeprobe: the C side of overlay4j's wake-latency probe (see run.sh).
 *
 *   wakeprobe send PORT N GAP_US [warm]
 *       sends N datagrams to 127.0.0.1:PORT, one every GAP_US microseconds, each carrying the CLOCK_MONOTONIC time
 *       (nanoseconds, native order) read just before its sendto(2); then -1 (stop), or with "warm" 1 (the waiter
 *       forgets what it measured so far: the end of a warm-up).
 *   wakeprobe wait PORT
 *       blocks in poll(2) on a UDP socket bound to 127.0.0.1:PORT and, for each datagram, takes the time from the
 *       sender's clock reading to its own after poll returns; prints percentiles at -1.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long samples[100000];

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *) a, y = *(const long long *) b;
    return x < y ? -1 : x > y;
}

static int send_all(int s, struct sockaddr_in *to, int n, long gap, int warm) {
    for (int i = 0; i < n; i++) {
        usleep(gap);
        long long ns = now_ns();
        sendto(s, &ns, sizeof ns, 0, (struct sockaddr *) to, sizeof *to);
    }
    long long last = warm ? 1 : -1;
    sendto(s, &last, sizeof last, 0, (struct sockaddr *) to, sizeof *to);
    return 0;
}

static int wait_all(int s, struct sockaddr_in *at) {
    if (bind(s, (struct sockaddr *) at, sizeof *at) != 0) {
        perror("bind");
        return 1;
    }
    int n = 0;
    for (;;) {
        struct pollfd p = {s, POLLIN, 0};
        poll(&p, 1, -1);
        long long now = now_ns(), sent = 0;
        if (recv(s, &sent, sizeof sent, MSG_DONTWAIT) != sizeof sent) {
            continue;
        }
        if (sent < 0) {
            break;
        }
        if (sent == 1) {
            n = 0;
        } else if (n < 100000) {
            samples[n++] = now - sent;
        }
    }
    if (n == 0) {
        return 1;
    }
    qsort(samples, n, sizeof samples[0], cmp);
    printf("C poll        n=%d p10=%.1f p50=%.1f p90=%.1f us\n", n, samples[n / 10] / 1e3, samples[n / 2] / 1e3,
           samples[n * 9 / 10] / 1e3);
    return 0;
}

int main(int argc, char **argv) {
    int sending = argc >= 5 && strcmp(argv[1], "send") == 0;
    if (!sending && !(argc >= 3 && strcmp(argv[1], "wait") == 0)) {
        fprintf(stderr, "usage: wakeprobe send PORT N GAP_US [warm] | wakeprobe wait PORT\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sending ? send_all(s, &a, atoi(argv[3]), atol(argv[4]), argc > 5) : wait_all(s, &a);
}
