/* SPDX-License-Identifier: MIT */
/*
 * A shaped link for one rate of the `link` axis: two network namespaces,
 * tern-bench-<pid>-<n>-src and -dst, joined by a veth pair
 * (10.77.<n>.1/30 -- 10.77.<n>.2/30), with a token bucket on the egress of
 * both ends:
 *
 *   tc qdisc add dev <veth> root tbf rate <rate> burst <burst> latency 10ms
 *
 * These are bench/link.py's commands, measured there to give a plain TCP
 * stream 119 MB/s at 1gbit with burst 256kb. The burst scales with the rate
 * (256 KiB per Gbit/s, at least 64 KiB): a bucket smaller than what one timer
 * tick lets through caps a fast link below its rate.
 *
 * The addresses are private to the two namespaces, so runs of this and other
 * programs on the host never collide; the names carry our pid. Deleting a
 * namespace deletes its end of the veth pair, and with it the pair.
 * bench_link_down() is called on every way out of tern-bench but SIGKILL.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TBF_BURST_PER_GBIT (256u << 10)
#define TBF_BURST_MIN (64u << 10)
#define TBF_LATENCY "10ms"

/* @name's full path from PATH into @buf; false if it is nowhere. */
static bool on_path(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");

	if (!path)
		path = "/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n && n + strlen(name) + 2 < len) {
			snprintf(buf, len, "%.*s/%s", (int)n, path, name);
			if (!access(buf, X_OK))
				return true;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

int bench_link_check(char *err, size_t len)
{
	char path[4096];

	if (geteuid() != 0) {
		snprintf(err, len,
			 "a shaped --link needs root (it makes network namespaces, a veth pair "
			 "and tc qdiscs): run as root, or use --link loopback");
		return -EPERM;
	}
	if (!on_path("ip", path, sizeof(path)) || !on_path("tc", path, sizeof(path))) {
		snprintf(err, len, "a shaped --link needs ip and tc on PATH (Debian: iproute2)");
		return -ENOENT;
	}
	return 0;
}

/*
 * Run a command to its end, its stdout to /dev/null; 0 iff it exited 0. In a
 * process group of its own, so that a second Ctrl-C while tern-bench cleans
 * up reaches tern-bench only and not `ip netns del` half-way.
 */
static int run_cmd(char *const argv[], char *err, size_t len)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int ret, st = 0;
	pid_t pid;

	ret = posix_spawn_file_actions_init(&fa);
	if (ret)
		return -ret;
	ret = posix_spawnattr_init(&attr);
	if (ret) {
		posix_spawn_file_actions_destroy(&fa);
		return -ret;
	}
	ret = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	if (!ret)
		ret = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	if (!ret)
		ret = posix_spawnattr_setpgroup(&attr, 0);
	if (!ret)
		ret = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (ret) {
		snprintf(err, len, "cannot run %s: %s", argv[0], strerror(ret));
		return -ret;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	{
		size_t used =
		    (size_t)snprintf(err, len, "failed (%s %d):", WIFEXITED(st) ? "exit" : "signal",
				     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		unsigned int i;

		for (i = 0; argv[i] && used < len; i++)
			used += (size_t)snprintf(err + used, len - used, " %s", argv[i]);
	}
	return -EIO;
}

#define CMD(...) run_cmd((char *const[]){__VA_ARGS__, NULL}, err, len)

int bench_link_up(struct bench_link *l, unsigned int index, const struct bench_val *rate,
		  const char *burst, const char *latency, char *err, size_t len)
{
	int pid = (int)getpid(), ret;
	unsigned int side;

	memset(l, 0, sizeof(*l));
	l->rate_bps = rate->num;
	snprintf(l->rate, sizeof(l->rate), "%s", rate->text);
	if (burst) {
		snprintf(l->burst, sizeof(l->burst), "%s", burst);
	} else {
		uint64_t b = rate->num / 1000000000u * TBF_BURST_PER_GBIT +
			     rate->num % 1000000000u * TBF_BURST_PER_GBIT / 1000000000u;

		/* plain bytes: tc reads a bare number as bytes */
		snprintf(l->burst, sizeof(l->burst), "%llu",
			 (unsigned long long)(b < TBF_BURST_MIN ? TBF_BURST_MIN : b));
	}
	snprintf(l->latency, sizeof(l->latency), "%s", latency ? latency : TBF_LATENCY);
	if (!on_path("ip", l->ip, sizeof(l->ip))) {
		snprintf(err, len, "no ip on PATH");
		return -ENOENT;
	}
	snprintf(l->ns_src, sizeof(l->ns_src), "tern-bench-%d-%u-src", pid, index);
	snprintf(l->ns_dst, sizeof(l->ns_dst), "tern-bench-%d-%u-dst", pid, index);
	/* IFNAMSIZ is 16: "tb" + up to 7 pid digits + side + index */
	snprintf(l->dev_src, sizeof(l->dev_src), "tb%ds%u", pid, index);
	snprintf(l->dev_dst, sizeof(l->dev_dst), "tb%dd%u", pid, index);
	snprintf(l->addr_src, sizeof(l->addr_src), "10.77.%u.1", index);
	snprintf(l->addr_dst, sizeof(l->addr_dst), "10.77.%u.2", index);

	ret = CMD("ip", "netns", "add", l->ns_src);
	if (ret)
		return ret;
	l->made_src = true;
	ret = CMD("ip", "netns", "add", l->ns_dst);
	if (ret)
		return ret;
	l->made_dst = true;
	ret = CMD("ip", "link", "add", l->dev_src, "netns", l->ns_src, "type", "veth", "peer",
		  "name", l->dev_dst, "netns", l->ns_dst);
	for (side = 0; side < 2 && !ret; side++) {
		char *ns = side ? l->ns_dst : l->ns_src;
		char *dev = side ? l->dev_dst : l->dev_src;
		char addr[32];

		snprintf(addr, sizeof(addr), "%s/30", side ? l->addr_dst : l->addr_src);
		ret = CMD("ip", "-n", ns, "link", "set", "lo", "up");
		if (!ret)
			ret = CMD("ip", "-n", ns, "addr", "add", addr, "dev", dev);
		if (!ret)
			ret = CMD("ip", "-n", ns, "link", "set", dev, "up");
		if (!ret)
			ret =
			    CMD("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
				"tbf", "rate", l->rate, "burst", l->burst, "latency", l->latency);
	}
	return ret;
}

void bench_link_describe(const struct bench_link *l, FILE *f)
{
	fprintf(f,
		"tern-bench: link %s: namespaces %s (source, %s) and %s (destination, %s), veth "
		"%s--%s, tbf rate %s burst %s latency %s on both ends\n",
		l->rate, l->ns_src, l->addr_src, l->ns_dst, l->addr_dst, l->dev_src, l->dev_dst,
		l->rate, l->burst, l->latency);
}

void bench_link_down(struct bench_link *l)
{
	char err[512];
	size_t len = sizeof(err);

	/* the veth pair goes with either namespace */
	if (l->made_dst && CMD("ip", "netns", "del", l->ns_dst))
		fprintf(stderr, "tern-bench: cleanup: %s\n", err);
	if (l->made_src && CMD("ip", "netns", "del", l->ns_src))
		fprintf(stderr, "tern-bench: cleanup: %s\n", err);
	l->made_src = l->made_dst = false;
}
