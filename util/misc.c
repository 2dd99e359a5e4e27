/* SPDX-License-Identifier: MIT */
/*
 * Small shared helpers: session UUIDs, number parsing and taking over a
 * Unix socket path.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/random.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

int tern_uuid_generate(uint8_t uuid[16])
{
	size_t got = 0;

	while (got < 16) {
		ssize_t n = getrandom(uuid + got, 16 - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	uuid[6] = (uuid[6] & 0x0f) | 0x40; /* version 4 */
	uuid[8] = (uuid[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	return 0;
}

void tern_uuid_format(const uint8_t u[16], char buf[37])
{
	snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	/* strtoull() would skip blanks and accept a sign (" -1" is 2^64 - 1) */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

#define UNIX_DIAG_LISTEN (1u << 10) /* TCP_LISTEN: unix_diag uses the TCP states */

/*
 * Ask the kernel (sock_diag) whether a socket in our network namespace
 * listens on the file @st describes: 1 yes, 0 no, negative errno when
 * unix_diag cannot answer (not built, not allowed).
 */
int unix_sock_listening(const struct stat *st)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} q = {
	    .nlh = {.nlmsg_len = sizeof(q),
		    .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		    .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
	    .req = {.sdiag_family = AF_UNIX,
		    .udiag_states = UNIX_DIAG_LISTEN,
		    .udiag_show = UDIAG_SHOW_VFS},
	};
	/* The kernel's own dev_t encoding, which unix_diag reports. It reports
	 * 32 bits of the inode: a match on those alone errs the safe way
	 * (a stale file is kept and refused, a live one is never removed). */
	uint32_t dev = (uint32_t)major(st->st_dev) << 20 | (uint32_t)minor(st->st_dev);
	long buf[2048]; /* aligned for the headers */
	int fd, ret = 0;
	bool done = false;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	if (send(fd, &q, sizeof(q), 0) < 0) {
		ret = -errno;
		goto out;
	}
	while (!done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			break;
		}
		/* Read the dump to its end even once found: the socket is ours to drain. */
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct unix_diag_msg *m = NLMSG_DATA(h);
			struct rtattr *a = (struct rtattr *)(m + 1);
			int alen = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*m));

			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				ret = e->error ? e->error : -EIO;
				done = true;
				break;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
				continue;
			for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				struct unix_diag_vfs *v = RTA_DATA(a);

				if (a->rta_type == UNIX_DIAG_VFS && v->udiag_vfs_dev == dev &&
				    v->udiag_vfs_ino == (uint32_t)st->st_ino && ret == 0)
					ret = 1;
			}
		}
	}
out:
	close(fd);
	return ret;
}

/*
 * A socket file outlives the process that bound it, and nothing in it says
 * whether anyone listens. The kernel knows (unix_diag), and asking it
 * disturbs no one. When it cannot tell (unix_diag missing, or a listener in
 * another network namespace), connect() decides: a refused connect is the
 * one proof that nobody listens; any other failure (EACCES, a full backlog:
 * EAGAIN) may hide a live listener, so the file stays. That probe is a
 * connection the listener sees open and close at once.
 */
int unix_path_reclaim(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	struct stat st;
	int fd, ret;

	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	if (unix_sock_listening(&st) == 1)
		return -EADDRINUSE;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, len + 1);
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	close(fd);
	switch (ret) {
	case 0:
	case -EAGAIN: /* its backlog is full: busy, not gone */
		return -EADDRINUSE;
	case -ENOENT: /* removed meanwhile: free */
		return 0;
	case -ECONNREFUSED:
		break;
	default:
		return ret;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}
