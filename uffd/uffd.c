/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd: missing-page faults of destination guest RAM, and atomic
 * placement of the pages that answer them (see uffd.h).
 *
 * Why placement must go through the kernel: a page written in place with a
 * plain store is populated by the store's own fault first -- as a zero page
 * the kernel fills in -- and a vCPU may read it between that and the end of
 * the copy. UFFDIO_COPY builds the page aside and maps it whole, then wakes
 * whoever waits on it; a fault racing with it finds the page present and
 * does not wait. A page present already (placed by another channel, or
 * faulted in before registration) makes the kernel answer EEXIST: we skip
 * it and go on, since whoever placed it placed the same or a newer copy.
 *
 * The kernel reports how far a refused range got (uffdio_copy.copy: bytes
 * done, or the negative errno when none were), so a range goes in as few
 * calls as possible and a partial one resumes where it stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "uffd.h"

struct uffd {
	int fd;
	int stop_fd; /* eventfd: readable once uffd_interrupt() was called */
	uint64_t page;
	uint64_t features;
};

/* A userfaultfd, by the syscall or, where that is refused, the device. */
static int uffd_new_fd(struct tern_error *err)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int e = errno;

#ifdef USERFAULTFD_IOC_NEW
	if (fd < 0 && (e == EPERM || e == EACCES)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			e = errno;
			close(dev);
		}
	}
#endif
	if (fd < 0)
		return tern_error_set(err, -e,
				      "userfaultfd: %s (postcopy needs it: run as root, or set "
				      "vm.unprivileged_userfaultfd=1, or grant /dev/userfaultfd)",
				      strerror(e));
	return fd;
}

/* UFFDIO_API may succeed once per descriptor: ask a throwaway one first. */
static int uffd_features(uint64_t *ret, struct tern_error *err)
{
	struct uffdio_api api = {.api = UFFD_API};
	int fd = uffd_new_fd(err), e;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api)) {
		e = errno;
		close(fd);
		return tern_error_set(err, -e, "userfaultfd: UFFDIO_API: %s", strerror(e));
	}
	close(fd);
	*ret = api.features;
	return 0;
}

int uffd_open(struct uffd **ret, struct tern_error *err)
{
	struct uffdio_api api = {.api = UFFD_API};
	struct uffd *u;
	uint64_t have = 0;
	int ret_code, e;

	*ret = NULL;
	ret_code = uffd_features(&have, err);
	if (ret_code)
		return ret_code;
	u = calloc(1, sizeof(*u));
	if (!u)
		return tern_error_set(err, -ENOMEM, "userfaultfd: out of memory");
	u->page = (uint64_t)sysconf(_SC_PAGESIZE);
	u->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->stop_fd < 0) {
		e = errno;
		free(u);
		return tern_error_set(err, -e, "userfaultfd: eventfd: %s", strerror(e));
	}
	u->fd = uffd_new_fd(err);
	if (u->fd < 0) {
		ret_code = u->fd;
		close(u->stop_fd);
		free(u);
		return ret_code;
	}
	/* the faulting thread's id, for the fault statistics, where offered */
	api.features = have & UFFD_FEATURE_THREAD_ID;
	if (ioctl(u->fd, UFFDIO_API, &api)) {
		e = errno;
		uffd_close(u);
		return tern_error_set(err, -e, "userfaultfd: UFFDIO_API: %s", strerror(e));
	}
	u->features = api.features;
	*ret = u;
	return 0;
}

void uffd_close(struct uffd *u)
{
	if (!u)
		return;
	close(u->fd);
	close(u->stop_fd);
	free(u);
}

uint64_t uffd_page_size(const struct uffd *u)
{
	return u->page;
}

static int range_check(const struct uffd *u, const char *what, const void *addr, uint64_t len,
		       struct tern_error *err)
{
	if (!len || (uintptr_t)addr % u->page || len % u->page)
		return tern_error_set(err, -EINVAL,
				      "userfaultfd: %s %p + %" PRIu64
				      ": not a whole number of %" PRIu64 "-byte pages",
				      what, addr, len, u->page);
	return 0;
}

int uffd_register(struct uffd *u, void *addr, uint64_t len, struct tern_error *err)
{
	struct uffdio_register reg = {.range = {.start = (uintptr_t)addr, .len = len},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	const uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE);
	int ret = range_check(u, "register", addr, len, err), e;

	if (ret)
		return ret;
	if (ioctl(u->fd, UFFDIO_REGISTER, &reg)) {
		e = errno;
		return tern_error_set(err, -e,
				      "userfaultfd: register %p + %" PRIu64
				      ": %s (guest RAM must be private anonymous memory)",
				      addr, len, strerror(e));
	}
	if ((reg.ioctls & need) != need) {
		uffd_unregister(u, addr, len, NULL);
		return tern_error_set(err, -EOPNOTSUPP,
				      "userfaultfd: %p + %" PRIu64
				      ": the kernel offers no UFFDIO_COPY/ZEROPAGE there",
				      addr, len);
	}
	return 0;
}

int uffd_unregister(struct uffd *u, void *addr, uint64_t len, struct tern_error *err)
{
	struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
	int ret = range_check(u, "unregister", addr, len, err), e;

	if (ret)
		return ret;
	if (ioctl(u->fd, UFFDIO_UNREGISTER, &r)) {
		e = errno;
		return tern_error_set(err, -e, "userfaultfd: unregister %p + %" PRIu64 ": %s", addr,
				      len, strerror(e));
	}
	return 0;
}

/*
 * One placement ioctl over a range, resumed after partial progress and past
 * pages that are present already. @src NULL: zero pages.
 */
static int place(struct uffd *u, void *dst, const void *src, uint64_t len, uint64_t *present,
		 struct tern_error *err)
{
	uint64_t done = 0, skipped = 0;
	int ret = range_check(u, src ? "copy to" : "zero", dst, len, err);

	while (!ret && done < len) {
		uint64_t start = (uintptr_t)dst + done;
		int64_t got;
		int rc, e;

		if (src) {
			struct uffdio_copy c = {
			    .dst = start, .src = (uintptr_t)src + done, .len = len - done};

			rc = ioctl(u->fd, UFFDIO_COPY, &c);
			e = errno;
			got = c.copy;
		} else {
			struct uffdio_zeropage z = {.range = {.start = start, .len = len - done}};

			rc = ioctl(u->fd, UFFDIO_ZEROPAGE, &z);
			e = errno;
			got = z.zeropage;
		}
		if (!rc) {
			done = len;
			break;
		}
		if (got > 0) {
			done += (uint64_t)got; /* partial: go on from there */
			continue;
		}
		if (e == EEXIST) {
			done += u->page; /* present already: leave it */
			skipped++;
			continue;
		}
		if (e == EAGAIN || e == EINTR)
			continue; /* the mapping changed under us: try again */
		ret = tern_error_set(err, -e, "userfaultfd: %s page %#" PRIx64 ": %s",
				     src ? "placing" : "zeroing", start, strerror(e));
	}
	if (present)
		*present = skipped;
	return ret;
}

int uffd_copy(struct uffd *u, void *dst, const void *src, uint64_t len, uint64_t *present,
	      struct tern_error *err)
{
	return place(u, dst, src, len, present, err);
}

int uffd_zero(struct uffd *u, void *dst, uint64_t len, uint64_t *present, struct tern_error *err)
{
	return place(u, dst, NULL, len, present, err);
}

int uffd_wake(struct uffd *u, void *addr, uint64_t len, struct tern_error *err)
{
	struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
	int ret = range_check(u, "wake", addr, len, err), e;

	if (ret)
		return ret;
	if (ioctl(u->fd, UFFDIO_WAKE, &r)) {
		e = errno;
		return tern_error_set(err, -e, "userfaultfd: wake %p + %" PRIu64 ": %s", addr, len,
				      strerror(e));
	}
	return 0;
}

void uffd_interrupt(struct uffd *u)
{
	uint64_t one = 1;

	/* an eventfd write fails only when its counter would overflow */
	if (write(u->stop_fd, &one, sizeof(one)) < 0)
		return;
}

static int64_t ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

int uffd_read_faults(struct uffd *u, struct uffd_fault *f, unsigned int max, int timeout_ms,
		     struct tern_error *err)
{
	struct uffd_msg msg[16];
	struct timespec deadline;
	unsigned int n = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	while (!n && max) {
		struct pollfd p[2] = {{.fd = u->fd, .events = POLLIN},
				      {.fd = u->stop_fd, .events = POLLIN}};
		int64_t left = timeout_ms < 0 ? -1 : MAX(ms_left(&deadline), 0);
		ssize_t got;
		int rc, e;

		rc = poll(p, 2, (int)MIN(left, (int64_t)INT32_MAX));
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			return tern_error_set(err, -e, "userfaultfd: poll: %s", strerror(e));
		}
		if (p[1].revents)
			return -ECANCELED;
		if (!rc)
			return 0;
		if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			return tern_error_set(err, -EIO, "userfaultfd: the descriptor failed");
		got = read(u->fd, msg, sizeof(msg[0]) * MIN(max, ARRAY_SIZE(msg)));
		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue; /* woken, yet the fault was served meanwhile */
			e = errno;
			return tern_error_set(err, -e, "userfaultfd: read: %s", strerror(e));
		}
		for (size_t i = 0; i < (size_t)got / sizeof(msg[0]); i++) {
			/* no other event was asked for in UFFDIO_API */
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			f[n].addr = msg[i].arg.pagefault.address & ~(u->page - 1);
			f[n].write = msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
			f[n].tid = (u->features & UFFD_FEATURE_THREAD_ID)
				       ? msg[i].arg.pagefault.feat.ptid
				       : 0;
			n++;
		}
	}
	return (int)n;
}
