/* SPDX-License-Identifier: MIT */
/*
 * Child processes with a pipe on stdout, for tern-bench and the KVM
 * end-to-end tests.
 *
 * Why one poll() loop and not a thread per child: two children at most, and
 * each prints a few lines in its whole life (tern-vm: the destination's
 * "listening" line, then one final JSON line per side). Reading every pipe
 * while waiting matters all the same: a child blocked on a full pipe would
 * never exit. Reaping is waitpid(WNOHANG) on every pass, with the poll
 * timeout capped at 50 ms, so no SIGCHLD handler is needed and the callers
 * keep their own signal handling.
 */
#include "bench_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A child's stdout beyond this is dropped: tern-vm prints a few hundred bytes. */
#define PROC_OUT_MAX (1u << 20)
#define PROC_POLL_MS 50

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int proc_spawn(struct bench_proc *p, const char *name, char *const argv[], bool err)
{
	posix_spawn_file_actions_t fa;
	int fds[2], efds[2] = {-1, -1};
	int ret;

	memset(p, 0, sizeof(*p));
	p->name = name;
	p->out_fd = p->err_fd = -1;
	p->out_cap = 4096;
	p->out = malloc(p->out_cap);
	if (!p->out)
		return -ENOMEM;
	p->out[0] = '\0';
	if (err) {
		p->err_cap = 4096;
		p->err = malloc(p->err_cap);
		if (!p->err)
			return -ENOMEM;
		p->err[0] = '\0';
	}
	/*
	 * Both ends close on exec: the child gets only its dup2()ed copy on
	 * fd 1 (and 2), so a second child never holds the first one's pipe open.
	 */
	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	if (err && pipe2(efds, O_CLOEXEC)) {
		ret = -errno;
		close(fds[0]);
		close(fds[1]);
		return ret;
	}
	ret = posix_spawn_file_actions_init(&fa);
	if (ret) {
		close(fds[0]);
		close(fds[1]);
		if (err) {
			close(efds[0]);
			close(efds[1]);
		}
		return -ret;
	}
	ret = posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	if (!ret && err)
		ret = posix_spawn_file_actions_adddup2(&fa, efds[1], STDERR_FILENO);
	if (!ret)
		ret = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (err)
		close(efds[1]);
	if (ret) {
		p->pid = 0;
		close(fds[0]);
		if (err)
			close(efds[0]);
		return -ret;
	}
	p->out_fd = fds[0];
	p->err_fd = efds[0];
	p->start_ns = bench_now_ns();
	return 0;
}

int bench_proc_spawn(struct bench_proc *p, const char *name, char *const argv[])
{
	return proc_spawn(p, name, argv, false);
}

int bench_proc_spawn_err(struct bench_proc *p, const char *name, char *const argv[])
{
	return proc_spawn(p, name, argv, true);
}

/* Copy the whole lines of ->err not copied yet to our stderr (all of it at EOF). */
static void proc_tee(struct bench_proc *p, bool eof)
{
	while (p->err_teed < p->err_len) {
		const char *line = p->err + p->err_teed;
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
		bool skip;

		if (!nl && !eof)
			return;
		skip = p->tee_skip && memmem(line, n, p->tee_skip, strlen(p->tee_skip));
		if (!skip && write(STDERR_FILENO, line, n) < 0) {
			/* our stderr is gone: nothing to tell anyone */
		}
		p->err_teed += n;
	}
}

/* Read what is there into @out (stdout or stderr); close at EOF. */
static void proc_drain(int *fd, char **out, size_t *out_len, size_t *out_cap)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(*fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN)
				return;
			close(*fd);
			*fd = -1;
			return;
		}
		if (*out_len + (size_t)n + 1 > *out_cap && *out_cap < PROC_OUT_MAX) {
			size_t cap = *out_cap;
			char *o;

			while (cap < *out_len + (size_t)n + 1 && cap < PROC_OUT_MAX)
				cap *= 2;
			o = realloc(*out, cap);
			if (o) {
				*out = o;
				*out_cap = cap;
			}
		}
		if (*out_len + (size_t)n + 1 > *out_cap)
			n = (ssize_t)(*out_cap - 1 - *out_len);
		memcpy(*out + *out_len, buf, (size_t)n);
		*out_len += (size_t)n;
		(*out)[*out_len] = '\0';
		/* One read per poll round: poll() said there is data, not how much. */
		return;
	}
}

static void proc_reap(struct bench_proc *p)
{
	int st;
	pid_t r;

	if (!p->pid || p->reaped)
		return;
	do
		r = waitpid(p->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == p->pid) {
		p->wstatus = st;
		p->reaped = true;
		p->end_ns = bench_now_ns();
	}
}

/*
 * ->err_fd counts only with ->err: callers that zero a struct bench_proc and
 * set ->out_fd = -1 before they spawn (or never spawn) leave ->err_fd at 0.
 */
static int proc_err_fd(const struct bench_proc *p)
{
	return p->err ? p->err_fd : -1;
}

static bool proc_done(const struct bench_proc *p)
{
	return !p->pid || (p->reaped && p->out_fd < 0 && proc_err_fd(p) < 0);
}

bool bench_proc_pump(struct bench_proc *const procs[], size_t n, uint64_t until_ns)
{
	for (;;) {
		struct pollfd pfd[16];
		struct bench_proc *who[16];
		bool is_err[16];
		size_t i, npfd = 0;
		bool all = true;
		uint64_t now;
		int ms;

		for (i = 0; i < n; i++) {
			if (!procs[i])
				continue;
			proc_reap(procs[i]);
			if (!proc_done(procs[i]))
				all = false;
			if (procs[i]->out_fd >= 0 && npfd < 16) {
				pfd[npfd].fd = procs[i]->out_fd;
				pfd[npfd].events = POLLIN;
				is_err[npfd] = false;
				who[npfd++] = procs[i];
			}
			if (proc_err_fd(procs[i]) >= 0 && npfd < 16) {
				pfd[npfd].fd = procs[i]->err_fd;
				pfd[npfd].events = POLLIN;
				is_err[npfd] = true;
				who[npfd++] = procs[i];
			}
		}
		if (all)
			return true;
		now = bench_now_ns();
		if (now >= until_ns)
			return false;
		ms = (int)((until_ns - now + 999999) / 1000000);
		if (ms > PROC_POLL_MS)
			ms = PROC_POLL_MS;
		if (poll(pfd, npfd, ms) < 0) {
			if (errno != EINTR)
				return false;
			continue;
		}
		for (i = 0; i < npfd; i++) {
			struct bench_proc *w = who[i];

			if (!pfd[i].revents)
				continue;
			if (is_err[i]) {
				proc_drain(&w->err_fd, &w->err, &w->err_len, &w->err_cap);
				proc_tee(w, w->err_fd < 0);
			} else {
				proc_drain(&w->out_fd, &w->out, &w->out_len, &w->out_cap);
			}
		}
	}
}

char *bench_proc_first_line(struct bench_proc *p, uint64_t deadline_ns)
{
	struct bench_proc *one[1] = {p};
	char *nl;

	for (;;) {
		nl = strchr(p->out, '\n');
		if (nl)
			return strndup(p->out, (size_t)(nl - p->out));
		if (p->out_fd < 0 || bench_now_ns() >= deadline_ns)
			return NULL;
		/* Pump in short slices so a line is seen as soon as it arrives. */
		{
			uint64_t until = bench_now_ns() + 10 * 1000000u;

			if (until > deadline_ns)
				until = deadline_ns;
			bench_proc_pump(one, 1, until);
		}
	}
}

char *bench_proc_find_line(struct bench_proc *p, bool on_stderr, const char *needle,
			   uint64_t deadline_ns)
{
	struct bench_proc *one[1] = {p};

	for (;;) {
		const char *buf = on_stderr ? p->err : p->out, *line = buf, *nl;
		int fd = on_stderr ? proc_err_fd(p) : p->out_fd;

		while (line && (nl = strchr(line, '\n'))) {
			const char *hit = strstr(line, needle);

			if (hit && hit < nl)
				return strndup(line, (size_t)(nl - line));
			line = nl + 1;
		}
		if (!buf || fd < 0 || bench_now_ns() >= deadline_ns)
			return NULL;
		{
			uint64_t until = bench_now_ns() + 10 * 1000000u;

			if (until > deadline_ns)
				until = deadline_ns;
			bench_proc_pump(one, 1, until);
		}
	}
}

void bench_proc_signal(struct bench_proc *p, int sig)
{
	if (!bench_proc_running(p))
		return;
	if (kill(p->pid, sig) == 0 && sig == SIGKILL)
		p->killed = true;
}

bool bench_proc_running(const struct bench_proc *p)
{
	return p->pid && !p->reaped;
}

uint64_t bench_proc_rss(const struct bench_proc *p)
{
	char path[64];
	unsigned long long size, rss;
	FILE *f;
	int n;

	if (!bench_proc_running(p))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)p->pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fscanf(f, "%llu %llu", &size, &rss);
	fclose(f);
	if (n != 2)
		return 0;
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

char *bench_proc_last_object(const struct bench_proc *p, bool skip_first)
{
	const char *line = p->out, *best = NULL, *nl;
	size_t best_len = 0;
	bool first = true;

	while (*line) {
		nl = strchr(line, '\n');
		if (!nl)
			nl = line + strlen(line);
		if (line[0] == '{' && !(first && skip_first)) {
			best = line;
			best_len = (size_t)(nl - line);
		}
		first = false;
		line = *nl ? nl + 1 : nl;
	}
	return best ? strndup(best, best_len) : NULL;
}

void bench_proc_describe(const struct bench_proc *p, char *buf, size_t len)
{
	if (!p->pid)
		snprintf(buf, len, "not started");
	else if (!p->reaped)
		snprintf(buf, len, "running");
	else if (WIFEXITED(p->wstatus))
		snprintf(buf, len, "exit %d", WEXITSTATUS(p->wstatus));
	else if (WIFSIGNALED(p->wstatus))
		snprintf(buf, len, "killed by signal %d%s", WTERMSIG(p->wstatus),
			 p->killed && WTERMSIG(p->wstatus) == SIGKILL ? " (sent by us)" : "");
	else
		snprintf(buf, len, "wait status %#x", p->wstatus);
}

int bench_proc_exit_code(const struct bench_proc *p)
{
	if (p->reaped && WIFEXITED(p->wstatus))
		return WEXITSTATUS(p->wstatus);
	return -1;
}

void bench_proc_fini(struct bench_proc *p)
{
	if (bench_proc_running(p)) {
		int st = 0;

		bench_proc_signal(p, SIGKILL);
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
		p->wstatus = st;
		p->reaped = true;
		p->end_ns = bench_now_ns();
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (proc_err_fd(p) >= 0)
		close(p->err_fd);
	p->out_fd = p->err_fd = -1;
	free(p->out);
	free(p->err);
	p->out = p->err = NULL;
	p->out_len = p->out_cap = p->err_len = p->err_cap = 0;
}
