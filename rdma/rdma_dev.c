/* SPDX-License-Identifier: MIT */
/*
 * rdma_dev: what the connections of one process share, created and freed
 * under one mutex at setup and teardown only (never on the data path):
 *  - one protection domain per device (verbs context), refcounted by the
 *    connections that use it;
 *  - whole-region memory registrations (rdma-pin-all), keyed by PD, address,
 *    length and access, so that N channels over the same guest RAM pin it
 *    once;
 * plus counters of live verbs objects for the leak checks of the tests, and
 * the messages for a registration refused by RLIMIT_MEMLOCK and for a host
 * without a device.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "rdma_priv.h"
#include "rdma_test.h"

struct rdma_pd_ref {
	struct ibv_pd *pd;
	int refs;
	struct rdma_pd_ref *next;
};

struct rdma_shared_mr {
	struct ibv_mr *mr;
	int access;
	int refs;
	struct rdma_shared_mr *next;
};

static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rdma_pd_ref *pds;		  /* dev_lock */
static struct rdma_shared_mr *shared_mrs; /* dev_lock */
static long live[RDMA_OBJ_MAX];		  /* atomics */
static uint64_t registered_bytes;	  /* atomic: what this process has pinned */

static const char *const obj_names[RDMA_OBJ_MAX] = {
    [RDMA_OBJ_PD] = "PD", [RDMA_OBJ_CQ] = "CQ",	      [RDMA_OBJ_QP] = "QP",
    [RDMA_OBJ_MR] = "MR", [RDMA_OBJ_CM_ID] = "CM id", [RDMA_OBJ_CHANNEL] = "channel",
};

void rdma_obj_add(enum rdma_obj kind, int delta)
{
	__atomic_add_fetch(&live[kind], delta, __ATOMIC_RELAXED);
}

long rdma_live_objects(char *buf, size_t size)
{
	long total = 0;
	size_t used = 0;

	if (buf && size)
		buf[0] = '\0';
	for (int i = 0; i < RDMA_OBJ_MAX; i++) {
		long n = __atomic_load_n(&live[i], __ATOMIC_RELAXED);

		total += n;
		if (n && buf && used < size) {
			int w = snprintf(buf + used, size - used, "%s%ld %s", used ? ", " : "", n,
					 obj_names[i]);

			used += w > 0 ? (size_t)w : 0;
		}
	}
	return total;
}

struct ibv_pd *rdma_pd_get(struct ibv_context *verbs)
{
	struct rdma_pd_ref *r;
	struct ibv_pd *pd = NULL;

	pthread_mutex_lock(&dev_lock);
	for (r = pds; r; r = r->next) {
		if (r->pd->context == verbs) {
			r->refs++;
			pd = r->pd;
			goto out;
		}
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		goto out;
	r->pd = ibv_alloc_pd(verbs);
	if (!r->pd) {
		free(r);
		goto out;
	}
	rdma_obj_add(RDMA_OBJ_PD, 1);
	r->refs = 1;
	r->next = pds;
	pds = r;
	pd = r->pd;
out:
	pthread_mutex_unlock(&dev_lock);
	return pd;
}

void rdma_pd_put(struct ibv_pd *pd)
{
	struct rdma_pd_ref **p, *r;

	if (!pd)
		return;
	pthread_mutex_lock(&dev_lock);
	for (p = &pds; (r = *p); p = &r->next) {
		if (r->pd != pd)
			continue;
		if (!--r->refs) {
			*p = r->next;
			ibv_dealloc_pd(r->pd);
			rdma_obj_add(RDMA_OBJ_PD, -1);
			free(r);
		}
		break;
	}
	pthread_mutex_unlock(&dev_lock);
}

struct ibv_mr *rdma_reg(struct ibv_pd *pd, void *addr, size_t len, int access)
{
	struct ibv_mr *mr = ibv_reg_mr(pd, addr, len, access);

	if (mr) {
		rdma_obj_add(RDMA_OBJ_MR, 1);
		__atomic_add_fetch(&registered_bytes, (uint64_t)mr->length, __ATOMIC_RELAXED);
	}
	return mr;
}

int rdma_dereg(struct ibv_mr *mr)
{
	uint64_t len;
	int ret;

	if (!mr)
		return 0;
	len = mr->length;
	ret = ibv_dereg_mr(mr);
	if (!ret) {
		rdma_obj_add(RDMA_OBJ_MR, -1);
		__atomic_sub_fetch(&registered_bytes, len, __ATOMIC_RELAXED);
	}
	return -ret;
}

struct ibv_mr *rdma_shared_mr_get(struct ibv_pd *pd, void *addr, size_t len, int access,
				  bool *ret_created)
{
	struct rdma_shared_mr *s;
	struct ibv_mr *mr = NULL;
	int saved;

	pthread_mutex_lock(&dev_lock);
	for (s = shared_mrs; s; s = s->next) {
		if (s->mr->pd == pd && s->mr->addr == addr && s->mr->length == len &&
		    s->access == access) {
			s->refs++;
			mr = s->mr;
			*ret_created = false;
			goto out;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		goto out;
	}
	s->mr = rdma_reg(pd, addr, len, access);
	if (!s->mr) {
		saved = errno;
		free(s);
		errno = saved;
		goto out;
	}
	s->access = access;
	s->refs = 1;
	*ret_created = true;
	s->next = shared_mrs;
	shared_mrs = s;
	mr = s->mr;
out:
	saved = errno;
	pthread_mutex_unlock(&dev_lock);
	errno = saved;
	return mr;
}

bool rdma_shared_mr_put(struct ibv_mr *mr)
{
	struct rdma_shared_mr **p, *s;
	bool freed = false;

	if (!mr)
		return false;
	pthread_mutex_lock(&dev_lock);
	for (p = &shared_mrs; (s = *p); p = &s->next) {
		if (s->mr != mr)
			continue;
		if (!--s->refs) {
			*p = s->next;
			rdma_dereg(s->mr);
			free(s);
			freed = true;
		}
		break;
	}
	pthread_mutex_unlock(&dev_lock);
	return freed;
}

/* "8 MiB", "unlimited", "512 KiB" */
static void size_str(char *buf, size_t size, uint64_t v)
{
	if (v == (uint64_t)RLIM_INFINITY)
		snprintf(buf, size, "unlimited");
	else if (v >= (1ull << 20))
		snprintf(buf, size, "%" PRIu64 " MiB", v >> 20);
	else
		snprintf(buf, size, "%" PRIu64 " KiB", v >> 10);
}

int rdma_reg_error(char *buf, size_t size, int code, const char *what, uint64_t len,
		   const char *alt)
{
	uint64_t need = __atomic_load_n(&registered_bytes, __ATOMIC_RELAXED) + len;
	char want[32], lim[32], atleast[32];
	struct rlimit rl;

	size_str(want, sizeof(want), len);
	if ((code == -ENOMEM || code == -EPERM || code == -EAGAIN) &&
	    !getrlimit(RLIMIT_MEMLOCK, &rl)) {
		size_str(lim, sizeof(lim), rl.rlim_cur);
		/* what this process pins already, plus this, in whole MiB */
		size_str(atleast, sizeof(atleast), (need + (1ull << 20) - 1) & ~((1ull << 20) - 1));
		snprintf(buf, size,
			 "registering %s of %s failed: %s; RLIMIT_MEMLOCK is %s: raise it (ulimit "
			 "-l) to at least %s%s%s",
			 want, what, strerror_r(-code, (char[64]){""}, 64), lim, atleast,
			 alt ? " or " : "", alt ? alt : "");
	} else {
		snprintf(buf, size, "registering %s of %s failed: %s", want, what,
			 strerror_r(-code, (char[64]){""}, 64));
	}
	return code;
}

void rdma_device_names(char *buf, size_t size)
{
	DIR *d = opendir("/sys/class/infiniband");
	struct dirent *e;
	size_t used = 0;

	buf[0] = '\0';
	while (d && (e = readdir(d))) {
		int w;

		if (e->d_name[0] == '.')
			continue;
		w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", e->d_name);
		if (w < 0 || (size_t)w >= size - used)
			break;
		used += (size_t)w;
	}
	if (d)
		closedir(d);
	if (!used)
		snprintf(buf, size, "none");
}
