/* SPDX-License-Identifier: MIT */
/*
 * Child processes for tern-bench and the KVM end-to-end tests: spawn a
 * program with its stdout on a pipe (stderr is inherited), collect what it
 * prints, read its first line before it exits, wait with a deadline, and
 * kill and reap whatever is left. No threads: one poll() loop over the pipes.
 */
#ifndef TERN_BENCH_PROC_H
#define TERN_BENCH_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bench_proc {
	const char *name; /* "source", "destination": for messages */
	pid_t pid;	  /* 0 before spawn and once reaped */
	int out_fd;	  /* read end of its stdout; -1 at EOF */
	char *out;	  /* everything it printed on stdout, NUL-terminated */
	size_t out_len;
	size_t out_cap;
	int err_fd; /* read end of its stderr with bench_proc_spawn_err(), else -1 */
	char *err;  /* what it printed on stderr (also copied to ours), NUL-terminated */
	size_t err_len;
	size_t err_cap;
	size_t err_teed;      /* how much of ->err went to our stderr: whole lines only */
	const char *tee_skip; /* a line containing this is kept but not copied; NULL: none */
	int wstatus;	      /* valid once reaped */
	bool reaped;
	bool killed; /* we sent it SIGKILL */
	uint64_t start_ns;
	uint64_t end_ns; /* when it was reaped */
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/*
 * Start @argv[0] (a path: no PATH search) with @argv; its stdout goes to a
 * pipe this process reads, its stderr and stdin are ours. Returns 0 or a negative errno; @p is
 * zeroed first, so bench_proc_fini() is safe after a failure.
 */
int bench_proc_spawn(struct bench_proc *p, const char *name, char *const argv[]);

/*
 * As bench_proc_spawn(), and its stderr goes to a pipe too: kept in ->err
 * and copied to our stderr line by line as it arrives, so a person still
 * sees it (but for lines containing ->tee_skip, which the caller may set
 * after the spawn).
 */
int bench_proc_spawn_err(struct bench_proc *p, const char *name, char *const argv[]);

/*
 * Wait until @p printed a whole line containing @needle on stderr
 * (@on_stderr, with bench_proc_spawn_err()) or stdout, until it exited or
 * closed that stream, or until @deadline_ns. Returns a malloc()ed copy of the
 * line without its '\n' (caller frees), or NULL.
 */
char *bench_proc_find_line(struct bench_proc *p, bool on_stderr, const char *needle,
			   uint64_t deadline_ns);

/*
 * Wait until @p printed a whole first line, exited, or @deadline_ns passed.
 * Returns a malloc()ed copy of the line without its '\n' (caller frees), or
 * NULL if the process exited (or closed stdout) without one or time ran out.
 */
char *bench_proc_first_line(struct bench_proc *p, uint64_t deadline_ns);

/*
 * Read the pipes and reap the processes of @procs (NULL entries are skipped)
 * until every one has exited and closed its stdout, or until @until_ns.
 * Returns true if all are done.
 */
bool bench_proc_pump(struct bench_proc *const procs[], size_t n, uint64_t until_ns);

/* Send @sig if it is still running (SIGKILL marks it killed). */
void bench_proc_signal(struct bench_proc *p, int sig);

bool bench_proc_running(const struct bench_proc *p);

/* Its resident set in bytes from /proc/PID/statm, or 0 if unknown. */
uint64_t bench_proc_rss(const struct bench_proc *p);

/*
 * The last stdout line that starts with '{' and is not the first line when
 * @skip_first, as a malloc()ed string, or NULL.
 */
char *bench_proc_last_object(const struct bench_proc *p, bool skip_first);

/* "exit 0", "exit 3", "killed by signal 9 (by tern-bench)", "running". */
void bench_proc_describe(const struct bench_proc *p, char *buf, size_t len);

/* Exit code if it exited normally, else -1. */
int bench_proc_exit_code(const struct bench_proc *p);

/* Kill (SIGKILL) and reap it if still running, close the pipe, free the output. */
void bench_proc_fini(struct bench_proc *p);

#endif
