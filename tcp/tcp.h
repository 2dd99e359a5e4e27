/* SPDX-License-Identifier: MIT */
/*
 * tcp: stream-socket transports for "tcp:HOST:PORT" and "unix:PATH".
 *
 * TCP connections disable Nagle and keep the kernel's buffer autotuning;
 * Unix ones ask for 4 MiB buffers. send_iov / recv_iov neither allocate nor
 * lock, and leave the caller's iovec array as it was. shutdown() is
 * shutdown(2) with SHUT_RDWR, which wakes a thread blocked in recv or send on
 * that socket; calls that fail after it return -ECANCELED. TCP connections
 * also get keepalive and TCP_USER_TIMEOUT (30 s until set_io_timeout() sets
 * the session's io-timeout, which also bounds every send). A listener's
 * shutdown() wakes a blocked accept() the same way.
 */
#ifndef TERN_TCP_H
#define TERN_TCP_H

#include <sys/socket.h>

#include "util/hostport.h"
#include "util/transport.h"

extern const struct tern_transport_ops tcp_transport_ops;  /* "tcp" */
extern const struct tern_transport_ops unix_transport_ops; /* "unix" */

/*
 * tcp_transport_for_uri() - pick the transport for @uri and point
 * @ret_addr at the part after "scheme:". -EPROTONOSUPPORT with a message for
 * an unknown scheme.
 */
int tcp_transport_for_uri(const char *uri, const struct tern_transport_ops **ret_ops,
			  const char **ret_addr, struct tern_error *err);

/*
 * tcp_conn_from_fd() - a connection over an already connected stream socket
 * (tests: socketpair). @fd is consumed: owned by the connection on success,
 * closed on failure. @peer (may be NULL) names the other end in messages.
 */
int tcp_conn_from_fd(int fd, const char *peer, struct tern_conn **ret_conn, struct tern_error *err);

/*
 * tcp/ internals, shared by tcp_uri.c and tcp_conn.c and used by the unit
 * test; no other module should need them.
 */

/*
 * tcp_addr_parse() - split @addr (the part of a tcp URI after "tcp:") into
 * @ret_addr. -EINVAL with a message naming @addr for an empty host, a missing,
 * non-numeric or out-of-range port, or a bare IPv6 address without brackets.
 */
int tcp_addr_parse(const char *addr, struct hostport *ret_addr, struct tern_error *err);

/*
 * tcp_sockaddr_uri() - format @sa as a URI: "tcp:1.2.3.4:5", "tcp:[::1]:5",
 * "unix:/path" ("unix:" for an unnamed socket). 0, -ENOSPC when @buf is too
 * small (it then holds a truncated string), -EAFNOSUPPORT.
 */
int tcp_sockaddr_uri(const struct sockaddr *sa, socklen_t salen, char *buf, size_t size);

#endif /* TERN_TCP_H */
