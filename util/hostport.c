/* SPDX-License-Identifier: MIT */
/*
 * "HOST:PORT" and "[V6ADDR]:PORT", the address part of tcp: and rdma: URIs.
 * Parsing is strict: in "::1:4444" the port cannot be told from the last
 * group, so an IPv6 address must be in brackets.
 */
#include <string.h>

#include "util/hostport.h"
#include "util/util.h"

const char *hostport_split(const char *addr, struct hostport *a)
{
	const char *host = addr, *colon, *port;
	size_t hostlen;
	uint64_t v;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (!rb)
			return "missing ']' after IPv6 address";
		host = addr + 1;
		hostlen = (size_t)(rb - host);
		if (rb[1] != ':')
			return rb[1] ? "expected ':' after ']'" : "missing port";
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return "missing port";
		hostlen = (size_t)(colon - addr);
		if (memchr(addr, ':', hostlen))
			return "IPv6 address must be in brackets, e.g. [::1]:4444";
	}
	if (!hostlen)
		return "empty host";
	if (hostlen >= sizeof(a->host))
		return "host name too long";
	port = colon + 1;
	if (!*port)
		return "missing port";
	if (strlen(port) >= sizeof(a->port) || parse_u64(port, &v) || v > 65535)
		return "port is not a number in 0..65535";
	memcpy(a->host, host, hostlen);
	a->host[hostlen] = '\0';
	memcpy(a->port, port, strlen(port) + 1);
	return NULL;
}
