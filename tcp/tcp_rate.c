/* SPDX-License-Identifier: MIT */
/*
 * What the kernel measured of a TCP connection's path: its delivery rate
 * (TCP_INFO tcpi_delivery_rate, Linux 4.9+), which is what the link carries
 * for this connection -- unlike the time a write takes, which only shows how
 * fast the socket buffer had room. Its own file: the kernel's struct tcp_info
 * (linux/tcp.h) and glibc's (netinet/tcp.h, without these fields) cannot be
 * included together.
 */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tcp_rate.h"

uint64_t tcp_fd_delivery_rate(int fd, bool *ret_app_limited)
{
	struct tcp_info ti = {0};
	socklen_t len = sizeof(ti);

	*ret_app_limited = false;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_delivery_rate) + sizeof(ti.tcpi_delivery_rate))
		return 0; /* not TCP (a Unix socket), or an old kernel */
	*ret_app_limited = ti.tcpi_delivery_rate_app_limited;
	return ti.tcpi_delivery_rate;
}
