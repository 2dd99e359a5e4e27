/* SPDX-License-Identifier: MIT */
/*
 * The control thread: the one place that calls tern_cancel() on behalf of
 * SIGINT/SIGTERM, --timeout and --cancel-on.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (main blocks them
 * before it creates any, and threads inherit the mask) and read here from a
 * signalfd, so no handler runs in a random thread.
 *
 * --cancel-on: state_changed runs on whichever library thread made the
 * transition, sometimes inside a public call (tern_migrate() makes
 * none -> setup on the caller's thread). Cancelling from there would re-enter
 * the library from its own callback, so the callback only writes an eventfd,
 * and this thread cancels. The callback then waits (bounded) until the
 * cancel was issued, so the session is cancelled in the state asked for and
 * not a few steps later; that is safe because the library holds no lock of
 * its own while it calls state_changed (core/state.c).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "tv.h"

#define TV_CANCEL_WAIT_MS 2000

struct tv_ctl {
	/* immutable after tv_ctl_start() */
	const struct tv_cfg *cfg;
	int sfd, efd;
	uint64_t deadline_ns; /* 0: none */
	pthread_t thread;
	/* protected by ->lock; the session pointer is only used under it */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct tern_session *s;
	bool interrupted;
	unsigned int signals;
	bool timed_out;
	bool cancel_req;
	bool cancel_issued;
	bool cancel_on_seen;
	bool quit;
};

static void ctl_cancel_locked(struct tv_ctl *c, const char *why)
{
	if (c->s && tern_cancel(c->s) == 0)
		tv_log(c->cfg, 5, "cancelling the migration: %s", why);
	c->cancel_issued = true;
	pthread_cond_broadcast(&c->cond);
}

static void *ctl_main(void *arg)
{
	struct tv_ctl *c = arg;

	pthread_setname_np(pthread_self(), "tv-ctl");
	for (;;) {
		struct pollfd pfd[2] = {{c->sfd, POLLIN, 0}, {c->efd, POLLIN, 0}};
		int timeout = 200;

		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&c->lock);
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(c->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				fprintf(stderr, "tern-vm: %s\n", strsignal((int)si.ssi_signo));
				c->interrupted = true;
				c->signals++;
				ctl_cancel_locked(c, "signal");
			}
		}
		if (pfd[1].revents & POLLIN) {
			uint64_t v;

			if (read(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				perror("tern-vm: eventfd");
			if (c->cancel_req && !c->cancel_issued)
				ctl_cancel_locked(c, "--cancel-on");
		}
		if (c->deadline_ns && !c->timed_out && tv_now_ns() >= c->deadline_ns) {
			fprintf(stderr, "tern-vm: --timeout %llu s reached\n",
				(unsigned long long)c->cfg->timeout_s);
			c->timed_out = true;
			ctl_cancel_locked(c, "timeout");
		}
		if (c->quit) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

int tv_ctl_start(const struct tv_cfg *cfg, struct tv_ctl **ret_ctl, struct tern_error *err)
{
	struct tv_ctl *c;
	sigset_t set;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return tv_err(err, -ENOMEM, "out of memory");
	c->cfg = cfg;
	c->sfd = c->efd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (cfg->timeout_s)
		c->deadline_ns = tv_now_ns() + cfg->timeout_s * 1000000000ull;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* before any thread exists: they all inherit the mask */
	ret = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (ret) {
		ret = tv_err(err, -ret, "blocking SIGINT/SIGTERM: %s", strerror(ret));
		goto err_free;
	}
	c->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->sfd < 0 || c->efd < 0) {
		ret = tv_err(err, -errno, "signalfd/eventfd: %s", strerror(errno));
		goto err_free;
	}
	ret = pthread_create(&c->thread, NULL, ctl_main, c);
	if (ret) {
		ret = tv_err(err, -ret, "starting the control thread: %s", strerror(ret));
		goto err_free;
	}
	*ret_ctl = c;
	return 0;
err_free:
	if (c->sfd >= 0)
		close(c->sfd);
	if (c->efd >= 0)
		close(c->efd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return ret;
}

/* Before tern_migrate()/tern_incoming(), and with NULL before tern_session_free(). */
void tv_ctl_set_session(struct tv_ctl *c, struct tern_session *s)
{
	pthread_mutex_lock(&c->lock);
	c->s = s;
	/* a signal or a timeout that came first cancels the new session at once */
	if (s && (c->interrupted || c->timed_out))
		tern_cancel(s);
	pthread_mutex_unlock(&c->lock);
}

static void ctl_wake(struct tv_ctl *c)
{
	uint64_t one = 1;

	if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		perror("tern-vm: eventfd");
}

/* From state_changed, on any library thread. */
void tv_ctl_state_changed(struct tv_ctl *c, enum tern_status to)
{
	struct timespec ts;

	if (!c || c->cfg->cancel_on == TERN_STATUS_INVALID || to != c->cfg->cancel_on)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TV_CANCEL_WAIT_MS / 1000;
	pthread_mutex_lock(&c->lock);
	if (c->cancel_on_seen) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->cancel_on_seen = true;
	c->cancel_req = true;
	ctl_wake(c);
	while (!c->cancel_issued) {
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&c->lock);
}

/* Cancel now (a failed vCPU): from the main thread. */
void tv_ctl_cancel(struct tv_ctl *c)
{
	pthread_mutex_lock(&c->lock);
	ctl_cancel_locked(c, "the guest failed");
	pthread_mutex_unlock(&c->lock);
}

bool tv_ctl_interrupted(struct tv_ctl *c)
{
	bool v;

	pthread_mutex_lock(&c->lock);
	v = c->interrupted;
	pthread_mutex_unlock(&c->lock);
	return v;
}

unsigned int tv_ctl_signals(struct tv_ctl *c)
{
	unsigned int v;

	pthread_mutex_lock(&c->lock);
	v = c->signals;
	pthread_mutex_unlock(&c->lock);
	return v;
}

bool tv_ctl_timed_out(struct tv_ctl *c)
{
	bool v;

	pthread_mutex_lock(&c->lock);
	v = c->timed_out;
	pthread_mutex_unlock(&c->lock);
	return v;
}

void tv_ctl_stop(struct tv_ctl *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->quit = true;
	c->s = NULL;
	pthread_mutex_unlock(&c->lock);
	ctl_wake(c);
	pthread_join(c->thread, NULL);
	close(c->sfd);
	close(c->efd);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
