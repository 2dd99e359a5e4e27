/* SPDX-License-Identifier: MIT */
/*
 * MSG_ZEROCOPY on a TCP socket: the completions side.
 *
 * With SO_ZEROCOPY on, sendmsg(MSG_ZEROCOPY) does not copy the caller's
 * pages into socket buffers: the skbs point at them (the kernel takes a
 * reference on each page, so they stay allocated even if the caller unmaps
 * them) until the peer acknowledged the data and every clone of those skbs
 * is gone. Then it queues a notification on the socket's error queue naming
 * the range of sends it let go of (zc_track.h). Until then the pages may be
 * read again -- by a retransmission, say -- so what the peer receives is the
 * pages' content at some moment between sendmsg() and the completion. The
 * caller (multifd/send.c via util/transport.h) only ever passes guest pages
 * this way, whose changes the dirty log records: see tcp_conn.c.
 *
 * Reaping: recvmsg(MSG_ERRQUEUE | MSG_DONTWAIT) until EAGAIN, in batches
 * (once TCP_ZC_REAP_AT sends are in flight, and before waiting), so the page
 * path does not pay a syscall per send; the kernel merges consecutive
 * ranges, so a batch is often one call. A notification that has not been
 * read is charged to the socket's optmem, which bounds the sends in flight
 * too: past net.core.optmem_max a zero-copy sendmsg() fails with ENOBUFS, as
 * it does when pinning the pages would pass RLIMIT_MEMLOCK (a process
 * without CAP_IPC_LOCK). Neither fails the migration: that packet's pages go
 * by copy (counted in ->fallbacks) and the next one tries again.
 *
 * Waiting: poll() with no events reports POLLERR while the error queue holds
 * a notification, so a wait is a poll() for it and a reap, until the sends
 * wanted are done. It ends with -ETIMEDOUT after the io timeout without one
 * completing (the peer stopped acknowledging: TCP_USER_TIMEOUT would end the
 * connection about then too), with -ECANCELED after the connection's
 * shutdown(), and with the socket's error when it broke.
 */
#include <errno.h>
#include <time.h> /* linux/errqueue.h uses struct timespec */
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "util/util.h"
#include "tcp_zc.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

int tcp_zc_new(int fd, struct tcp_zc **ret_zc)
{
	struct tcp_zc *z;
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
		return -errno;
	z = calloc(1, sizeof(*z));
	if (!z)
		return -ENOMEM;
	zc_track_init(&z->track);
	*ret_zc = z;
	return 0;
}

void tcp_zc_free(struct tcp_zc *z)
{
	free(z);
}

/* One notification's control message: the error and the offender's address. */
#define ZC_CMSG_SPACE CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6))

/* Read every notification queued now. Returns the sends they completed, or
 * -EPROTO for a range the tracker refuses, or recvmsg()'s error. */
static int zc_reap(struct tcp_zc *z, int fd)
{
	int total = 0;

	for (;;) {
		union {
			char buf[ZC_CMSG_SPACE];
			struct cmsghdr align;
		} control;
		struct msghdr msg = {.msg_control = control.buf,
				     .msg_controllen = sizeof(control.buf)};
		struct cmsghdr *cm;
		ssize_t n = recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			const struct sock_extended_err *ee;
			int ret;

			if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
			      (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
				continue;
			ee = (const struct sock_extended_err *)(const void *)CMSG_DATA(cm);
			/* anything else on the queue (none is asked for) is not ours */
			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY || ee->ee_errno)
				continue;
			ret = zc_track_complete(&z->track, ee->ee_info, ee->ee_data,
						ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED);
			if (ret < 0)
				return ret;
			total += ret;
		}
	}
	__atomic_store_n(&z->copied, z->track.copied, __ATOMIC_RELAXED);
	return total;
}

/* Wait until at most @max_span sends are between the oldest incomplete one
 * and the next; see tcp_zc_wait_all() for the ends. */
static int zc_wait(struct tcp_zc *z, int fd, const bool *shut, uint32_t max_span, int timeout_ms)
{
	uint64_t since = tern_now_ms(), now;
	short revents = 0; /* what the last poll() reported */

	for (;;) {
		struct pollfd pfd = {.fd = fd};
		int n = zc_reap(z, fd), left;

		if (n < 0)
			return n;
		if (zc_track_span(&z->track) <= max_span)
			return 0;
		if (__atomic_load_n(shut, __ATOMIC_ACQUIRE))
			return -ECANCELED;
		now = tern_now_ms();
		if (n > 0) {
			since = now;
		} else if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
			/* Not a notification: POLLERR is then the socket's own
			 * error (SO_ERROR reads and clears it), POLLHUP a socket
			 * closed both ways, where nothing more will complete. */
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (!getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) && soerr)
				return -soerr;
			if (revents & (POLLHUP | POLLNVAL))
				return -EPIPE;
		}
		if (now - since >= (uint64_t)timeout_ms)
			return -ETIMEDOUT;
		left = (int)((uint64_t)timeout_ms - (now - since));
		n = poll(&pfd, 1, left);
		if (n < 0 && errno != EINTR)
			return -errno;
		revents = n > 0 ? pfd.revents : 0;
	}
}

int tcp_zc_make_room(struct tcp_zc *z, int fd, const bool *shut, int timeout_ms)
{
	uint32_t span = zc_track_span(&z->track);
	int ret;

	if (span < TCP_ZC_REAP_AT)
		return 0;
	if (span < ZC_TRACK_MAX) {
		ret = zc_reap(z, fd);
		return ret < 0 ? ret : 0;
	}
	return zc_wait(z, fd, shut, ZC_TRACK_MAX - 1, timeout_ms);
}

void tcp_zc_sent(struct tcp_zc *z, size_t bytes)
{
	zc_track_sent(&z->track);
	__atomic_store_n(&z->sends, z->track.sent, __ATOMIC_RELAXED);
	__atomic_fetch_add(&z->bytes, bytes, __ATOMIC_RELAXED);
}

void tcp_zc_nobufs(struct tcp_zc *z, int fd)
{
	__atomic_fetch_add(&z->fallbacks, 1, __ATOMIC_RELAXED);
	/* errors show again on the next send or wait */
	(void)zc_reap(z, fd);
}

int tcp_zc_wait_all(struct tcp_zc *z, int fd, const bool *shut, int timeout_ms)
{
	return zc_wait(z, fd, shut, 0, timeout_ms);
}

bool tcp_zc_busy(struct tcp_zc *z, int fd)
{
	if (zc_track_idle(&z->track))
		return false;
	(void)zc_reap(z, fd);
	return !zc_track_idle(&z->track);
}

void tcp_zc_stats(const struct tcp_zc *z, struct tern_xport_stats *st)
{
	st->zc_sends += __atomic_load_n(&z->sends, __ATOMIC_RELAXED);
	st->zc_bytes += __atomic_load_n(&z->bytes, __ATOMIC_RELAXED);
	st->zc_copied += __atomic_load_n(&z->copied, __ATOMIC_RELAXED);
	st->zc_fallbacks += __atomic_load_n(&z->fallbacks, __ATOMIC_RELAXED);
}
