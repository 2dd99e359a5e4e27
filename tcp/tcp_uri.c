/* SPDX-License-Identifier: MIT */
/*
 * Transport URIs: "tcp:HOST:PORT", "tcp:[V6ADDR]:PORT" and "unix:PATH".
 *
 * Parsing is strict and early, so that a typo in a URI fails when the
 * operator types it, with the URI in the message, not later as a resolver or
 * bind error on one of N channels. An IPv6 address must be in brackets: in
 * "::1:4444" the port cannot be told from the last group.
 *
 * The reverse direction, a socket address back to a URI, serves the
 * listener's uri() (ephemeral port filled in) and the peer names that
 * messages carry.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/un.h>

#include "util/util.h"
#include "tcp.h"

/* The longest unix socket path bind() takes, without its NUL. */
#define TCP_UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

int tcp_addr_parse(const char *addr, struct hostport *ret_addr, struct tern_error *err)
{
	struct hostport a;
	const char *why;

	if (!addr)
		return tern_error_set(err, -EINVAL, "tcp: no address");
	why = hostport_split(addr, &a);
	if (why)
		return tern_error_set(err, -EINVAL, "tcp: bad address \"%s\": %s", addr, why);
	*ret_addr = a;
	return 0;
}

int tcp_transport_for_uri(const char *uri, const struct tern_transport_ops **ret_ops,
			  const char **ret_addr, struct tern_error *err)
{
	const char *colon, *rest;
	struct hostport a;
	const char *why;
	size_t slen;

	if (!uri || !*uri)
		return tern_error_set(err, -EINVAL,
				      "empty URI (expected tcp:HOST:PORT or unix:PATH)");
	colon = strchr(uri, ':');
	if (!colon)
		return tern_error_set(err, -EINVAL,
				      "URI \"%s\": no scheme (expected tcp:HOST:PORT or unix:PATH)",
				      uri);
	slen = (size_t)(colon - uri);
	rest = colon + 1;

	if (slen == 3 && !memcmp(uri, "tcp", 3)) {
		why = hostport_split(rest, &a);
		if (why)
			return tern_error_set(err, -EINVAL,
					      "URI \"%s\": %s (expected tcp:HOST:PORT)", uri, why);
		*ret_ops = &tcp_transport_ops;
		*ret_addr = rest;
		return 0;
	}
	if (slen == 4 && !memcmp(uri, "unix", 4)) {
		if (!*rest)
			return tern_error_set(err, -EINVAL,
					      "URI \"%s\": empty path (expected unix:PATH)", uri);
		if (strlen(rest) > TCP_UNIX_PATH_MAX)
			return tern_error_set(err, -ENAMETOOLONG,
					      "URI \"%s\": path longer than %zu bytes", uri,
					      TCP_UNIX_PATH_MAX);
		*ret_ops = &unix_transport_ops;
		*ret_addr = rest;
		return 0;
	}
	return tern_error_set(err, -EPROTONOSUPPORT,
			      "URI \"%s\": unknown transport \"%.*s\" (expected tcp or unix)", uri,
			      (int)MIN(slen, 32), uri);
}

int tcp_sockaddr_uri(const struct sockaddr *sa, socklen_t salen, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN], ifname[IF_NAMESIZE];
	int n;

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		if (salen < sizeof(*in) || !inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)))
			return -EAFNOSUPPORT;
		n = snprintf(buf, size, "tcp:%s:%u", host, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (salen < sizeof(*in6) ||
		    !inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)))
			return -EAFNOSUPPORT;
		if (in6->sin6_scope_id && if_indextoname(in6->sin6_scope_id, ifname))
			n = snprintf(buf, size, "tcp:[%s%%%s]:%u", host, ifname,
				     ntohs(in6->sin6_port));
		else
			n = snprintf(buf, size, "tcp:[%s]:%u", host, ntohs(in6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		size_t plen = 0;

		if (salen > off)
			plen = strnlen(un->sun_path, MIN(salen - off, sizeof(un->sun_path)));

		/* An abstract address (leading NUL) prints as unnamed. */
		n = snprintf(buf, size, "unix:%.*s", (int)plen, un->sun_path);
		break;
	}
	default:
		return -EAFNOSUPPORT;
	}
	if (n < 0)
		return -EINVAL;
	return (size_t)n < size ? 0 : -ENOSPC;
}
