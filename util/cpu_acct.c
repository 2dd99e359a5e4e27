/* SPDX-License-Identifier: MIT */
/*
 * Thread CPU accounting: what a migration cost in CPU, per thread class
 * (enum tern_cpu_class), so that the cost of each stage per GiB moved, and
 * with it the throughput one core could sustain for it, can be read off a
 * run on any host.
 *
 * Each thread asks the kernel for its own time. How much: its CPU clock
 * (CLOCK_THREAD_CPUTIME_ID), which brings the scheduler's runtime up to
 * date as it reads it. How that splits into user and system time:
 * getrusage(RUSAGE_THREAD), whose split comes from the kernel's tick
 * sampling -- and whose total is the runtime as of the thread's last tick
 * or context switch, not now. Over a thread's whole life that is close
 * enough; over a span of microseconds it is not: a worker that hashed for
 * 40 us after each 300 us send, the send blocking each time, was found
 * to have hashed for 0 us in all (the runtime caught up only in the next
 * span, and counted there). So each span counts its exact CPU, split in
 * the proportion getrusage gives for the span (or for the thread so far,
 * when the span has no tick of its own). A thread marks its usage
 * when it starts (cpu_thread_start()) and adds what it used since the last
 * mark into its class when it ends (cpu_thread_end(), which the
 * CPU_THREAD() declaration runs on every return path) or whenever it wants
 * the figure published (cpu_thread_flush()).
 *
 * The window: the session opens the totals when a migration starts and
 * closes them as it publishes its final figures; an add while they are
 * closed is dropped. Threads that live only within one migration (workers,
 * the return path, prefault, digest, lobby readers) are joined before the
 * close, so their whole life counts. A thread that predates the migration
 * and outlives it (the management server) flushes after each burst of work,
 * before it sleeps: what it did while the window was open counts, give or
 * take the one burst that straddles an edge. Such a thread is asked, not
 * measured from outside: pthread_getcpuclockid() would give another
 * thread's user + system time as one figure only, with no split.
 *
 * Only the thread itself calls the cpu_thread_*() functions on its struct;
 * struct cpu_acct is shared and takes its lock.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "util.h"

static const char *const class_names[TERN_CPU_CLASSES] = {
    [TERN_CPU_MIGRATION] = "migration", [TERN_CPU_SEND] = "send",     [TERN_CPU_RECV] = "recv",
    [TERN_CPU_PREFAULT] = "prefault",	[TERN_CPU_DIGEST] = "digest", [TERN_CPU_MGMT] = "mgmt",
    [TERN_CPU_OTHER] = "other",
};

TERN_EXPORT const char *tern_cpu_class_name(enum tern_cpu_class c)
{
	if (c <= TERN_CPU_INVALID || c >= TERN_CPU_CLASSES)
		return "invalid";
	return class_names[c];
}

void cpu_acct_init(struct cpu_acct *a)
{
	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
}

void cpu_acct_fini(struct cpu_acct *a)
{
	pthread_mutex_destroy(&a->lock);
}

void cpu_acct_open(struct cpu_acct *a)
{
	pthread_mutex_lock(&a->lock);
	memset(a->user_us, 0, sizeof(a->user_us));
	memset(a->sys_us, 0, sizeof(a->sys_us));
	a->open = true;
	pthread_mutex_unlock(&a->lock);
}

void cpu_acct_close(struct cpu_acct *a)
{
	pthread_mutex_lock(&a->lock);
	a->open = false;
	pthread_mutex_unlock(&a->lock);
}

bool cpu_acct_add(struct cpu_acct *a, enum tern_cpu_class cls, uint64_t user_us, uint64_t sys_us)
{
	bool open;

	if (cls <= TERN_CPU_INVALID || cls >= TERN_CPU_CLASSES)
		cls = TERN_CPU_OTHER;
	pthread_mutex_lock(&a->lock);
	open = a->open;
	if (open) {
		a->user_us[cls] += user_us;
		a->sys_us[cls] += sys_us;
	}
	pthread_mutex_unlock(&a->lock);
	return open;
}

void cpu_acct_get(struct cpu_acct *a, uint64_t user_us[TERN_CPU_CLASSES],
		  uint64_t sys_us[TERN_CPU_CLASSES])
{
	pthread_mutex_lock(&a->lock);
	memcpy(user_us, a->user_us, sizeof(a->user_us));
	memcpy(sys_us, a->sys_us, sizeof(a->sys_us));
	pthread_mutex_unlock(&a->lock);
}

static uint64_t tv_us(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}

/* The calling thread's user and system time so far (ticks' split), and its
 * exact CPU time (0 if the clock cannot be read). */
static void thread_usage(struct cpu_thread *ret)
{
	struct timespec ts;
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru)) {
		ret->user_us = ret->sys_us = 0;
	} else {
		ret->user_us = tv_us(&ru.ru_utime);
		ret->sys_us = tv_us(&ru.ru_stime);
	}
	ret->run_ns = clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
			  ? 0
			  : (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct cpu_thread cpu_thread_start(struct cpu_acct *a, enum tern_cpu_class cls, const char *fmt,
				   ...)
{
	struct cpu_thread t = {.acct = a, .cls = cls};
	char name[16]; /* the kernel's limit: 15 bytes and the NUL */
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(name, sizeof(name), fmt, ap);
		va_end(ap);
		pthread_setname_np(pthread_self(), name);
	}
	if (a)
		thread_usage(&t);
	return t;
}

void cpu_thread_flush(struct cpu_thread *t)
{
	struct cpu_thread now;
	uint64_t du, ds, run_us, user;

	if (!t->acct)
		return;
	thread_usage(&now);
	/* a thread's times never go back, but a failed call reads 0 */
	du = now.user_us > t->user_us ? now.user_us - t->user_us : 0;
	ds = now.sys_us > t->sys_us ? now.sys_us - t->sys_us : 0;
	t->user_us = now.user_us;
	t->sys_us = now.sys_us;
	if (!now.run_ns || now.run_ns < t->run_ns) {
		cpu_acct_add(t->acct, t->cls, du, ds);
		return;
	}
	/* whole microseconds of the exact time; the rest stays for later */
	run_us = (now.run_ns - t->run_ns) / 1000;
	t->run_ns += run_us * 1000;
	if (du + ds)
		user = (uint64_t)((double)run_us * (double)du / (double)(du + ds));
	else if (now.user_us + now.sys_us)
		user = (uint64_t)((double)run_us * (double)now.user_us /
				  (double)(now.user_us + now.sys_us));
	else
		user = run_us;
	cpu_acct_add(t->acct, t->cls, user, run_us - user);
}

void cpu_thread_switch(struct cpu_thread *t, enum tern_cpu_class cls)
{
	cpu_thread_flush(t);
	t->cls = cls;
}

void cpu_thread_end(struct cpu_thread *t)
{
	cpu_thread_flush(t);
	t->acct = NULL;
}

/*
 * The calling thread, and only it, yields to the others: nice @nice
 * (0..19). Raising one's own nice needs no privilege; lowering it again
 * would, so this is for threads that stay behind until they end. Best
 * effort: a refusal changes nothing but the order the scheduler picks in.
 */
void thread_set_background(int nice)
{
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice)) {
		/* nothing to do: the thread runs at its old priority */
	}
}
