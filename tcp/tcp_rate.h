/* SPDX-License-Identifier: MIT */
#ifndef TERN_TCP_RATE_H
#define TERN_TCP_RATE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * tcp_fd_delivery_rate() - bytes/s the kernel measured @fd's path delivering
 * recently; 0 when unknown (not TCP, old kernel, nothing sent yet).
 * *@ret_app_limited: the sample was limited by the sender having nothing to
 * send, so the path can carry at least that much, maybe more.
 */
uint64_t tcp_fd_delivery_rate(int fd, bool *ret_app_limited);

#endif /* TERN_TCP_RATE_H */
