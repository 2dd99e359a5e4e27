/* SPDX-License-Identifier: MIT */
/*
 * Small shared helpers: session UUIDs, number parsing and taking over a
 * Unix socket path.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
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

/*
 * Only connect() tells a live socket file from a stale one: the file outlives
 * the process that bound it, and nothing in it says whether anyone listens.
 * A refused connect is the one proof that nobody does; any other failure
 * (EACCES, a full backlog: EAGAIN) may hide a live listener, so the file
 * stays. The probe is a connection the listener sees open and close at once:
 * cheap for a server that expects clients to come and go.
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
