/* Passing fds over a unix socket: the seccomp listener from the command's child to pid 1,
 * the pty master from pid 1 to the supervisor, an environment's namespaces to a session. */
#include "sandbox.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define FDPASS_MAX 8

int azl_send_fds(int sock, const int *fds, int n) {
    char byte = 's';
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)]; } u;
    if (n < 1 || n > FDPASS_MAX) { errno = EINVAL; return -1; }
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    ssize_t r;
    do r = sendmsg(sock, &msg, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : -1;
}

int azl_recv_fds(int sock, int *fds, int max) {
    char byte;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * FDPASS_MAX)]; } u;
    if (max < 1 || max > FDPASS_MAX) { errno = EINVAL; return -1; }
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)max) };
    ssize_t r;
    do r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
    if (r <= 0) {
        if (r == 0) errno = ECONNRESET;
        return -1;
    }
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(sizeof(int)) ||
        (msg.msg_flags & MSG_CTRUNC)) {
        errno = EPROTO;
        return -1;
    }
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)n);
    return n;
}

int azl_send_fd(int sock, int fd) { return azl_send_fds(sock, &fd, 1); }

int azl_recv_fd(int sock) {
    int fd;
    int n = azl_recv_fds(sock, &fd, 1);
    if (n == 1) return fd;
    if (n > 1) errno = EPROTO;
    return -1;
}
