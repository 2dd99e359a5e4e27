/* SPDX-License-Identifier: MIT */
#ifndef TERN_HOSTPORT_H
#define TERN_HOSTPORT_H

/* "HOST:PORT" or "[V6ADDR]:PORT", split; both parts non-empty. */
struct hostport {
	char host[256];
	char port[8];
};

/*
 * hostport_split() - split @addr into @a. Returns NULL, or why @addr is not
 * an address (for the callers' messages, which name the URI they parsed):
 * empty host, missing or non-numeric port, port over 65535, an IPv6 address
 * without brackets.
 */
const char *hostport_split(const char *addr, struct hostport *a);

#endif /* TERN_HOSTPORT_H */
