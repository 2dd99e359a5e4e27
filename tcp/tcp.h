/* SPDX-License-Identifier: MIT */
/*
 * tcp: stream-socket transports for "tcp:HOST:PORT" and "unix:PATH".
 *
 * Connections disable Nagle and use large socket buffers (bulk page data);
 * shutdown() is shutdown(2) with SHUT_RDWR, which wakes a thread blocked in
 * recv or send on that socket.
 */
#ifndef TERN_TCP_H
#define TERN_TCP_H

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

/* A connection over an already connected stream socket (tests: socketpair). */
int tcp_conn_from_fd(int fd, const char *peer, struct tern_conn **ret_conn,
		     struct tern_error *err);

#endif /* TERN_TCP_H */
