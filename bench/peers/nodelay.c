/* Sets TCP_NODELAY on every TCP socket a process connects, loaded with LD_PRELOAD.
 *
 * bench/compare.sh loads it into the load generator for clients that leave Nagle's algorithm
 * on and have no option to turn it off (rabbitmq-stream-client 0.4.4): with Nagle, a publish
 * smaller than a segment waits for the previous one's ACK, and the peer would be measured
 * slower than its broker is. Every other client in the comparison sets TCP_NODELAY itself.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "connect");
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return real(fd, addr, len);
}
