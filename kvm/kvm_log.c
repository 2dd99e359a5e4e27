/* SPDX-License-Identifier: MIT */
/*
 * The KVM memslot dirty-log provider.
 *
 * How we use KVM's log, per memslot:
 *
 *   start   With KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, enable manual protection
 *           (and KVM_DIRTY_LOG_INITIALLY_SET where offered: every bit starts
 *           set and nothing is write-protected, so turning the log on does
 *           not walk the whole slot). Then re-register each slot with
 *           KVM_MEM_LOG_DIRTY_PAGES.
 *   sync    KVM_GET_DIRTY_LOG into our copy of the slot's bitmap, handed to
 *           the library with tern_dirty_report(). With manual protection the
 *           kernel's bits stay set and the pages stay writable: fetching
 *           re-arms nothing.
 *   clear   The library calls it per chunk of 1 << clear-bitmap-shift pages,
 *           right before it reads the chunk's first page. We pass
 *           KVM_CLEAR_DIRTY_LOG exactly the bits of that chunk that the last
 *           sync fetched: KVM clears those bits and write-protects those
 *           pages again, so a guest write after this point is seen by the
 *           next sync. A page written between the sync and the clear keeps
 *           its (unfetched) bit and is reported again next round -- sent
 *           twice, never lost.
 *   stop    Re-register each slot with the VMM's own flags (logging off) and
 *           turn manual protection off again.
 *
 * Without manual protection KVM_GET_DIRTY_LOG fetches and re-protects the
 * whole slot in one step, and the ops table has no clear hook.
 *
 * KVM_CLEAR_DIRTY_LOG wants first_page (relative to the slot) to be a
 * multiple of 64, and num_pages a multiple of 64 unless the range ends at the
 * slot's end. Chunks are in block coordinates and a slot may start anywhere
 * page-aligned in its block, so we widen the range to those bounds and pass
 * zero bits for the pages outside the chunk: a zero bit leaves a page alone.
 *
 * Threads: every hook runs on the migration thread; the figures are atomics
 * so that tern_kvm_log_stats() may read them from anywhere.
 */
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "tern/kvm.h"
#include "util/util.h"

#define KVM_LOG_PAGE 4096ull
/* The most pages one KVM_CLEAR_DIRTY_LOG takes (num_pages is a u32). */
#define KVM_LOG_CLEAR_MAX (1ull << 31)

struct kvm_log_slot {
	struct tern_kvm_slot s; /* as the VMM gave it */
	uint64_t npages;
	uint64_t block_page; /* first block page: s.block_offset / 4096 */
	uint64_t *bitmap;    /* the last KVM_GET_DIRTY_LOG (slot pages) */
	uint64_t *scratch;   /* KVM_CLEAR_DIRTY_LOG's input */
	bool logging;	     /* we set KVM_MEM_LOG_DIRTY_PAGES */
};

struct tern_kvm_log {
	/* immutable after tern_kvm_log_new() */
	int vm_fd;
	uint32_t nslots;
	struct kvm_log_slot *slots;
	uint64_t caps; /* KVM_CHECK_EXTENSION(MANUAL_DIRTY_LOG_PROTECT2) */
	/* migration thread only */
	bool started;
	bool manual;		 /* manual protection is on (we turned it on) */
	uint64_t round_clear_ns; /* clears since the last sync */
	/* written by the migration thread with atomics, read from anywhere */
	struct tern_kvm_log_stats st;
};

#define ST_ADD(log, f, v) __atomic_fetch_add(&(log)->st.f, (v), __ATOMIC_RELAXED)
#define ST_SET(log, f, v) __atomic_store_n(&(log)->st.f, (v), __ATOMIC_RELAXED)
#define ST_GET(log, f) __atomic_load_n(&(log)->st.f, __ATOMIC_RELAXED)

/* Record that ioctl @what failed on @slot (UINT32_MAX: not a slot's). */
static int kvm_log_errno(struct tern_error *err, const char *what, uint32_t slot)
{
	int e = errno ? errno : EIO;

	if (slot == UINT32_MAX)
		return tern_error_set(err, -e, "kvm dirty log: %s: %s", what, strerror(e));
	return tern_error_set(err, -e, "kvm dirty log: %s on slot %u (as %u, id %u): %s", what,
			      slot, slot >> 16, slot & 0xffff, strerror(e));
}

static int kvm_log_set_region(struct tern_kvm_log *log, struct kvm_log_slot *ls, bool on,
			      struct tern_error *err)
{
	struct kvm_userspace_memory_region mr = {
	    .slot = ls->s.slot,
	    .flags = ls->s.flags | (on ? KVM_MEM_LOG_DIRTY_PAGES : 0),
	    .guest_phys_addr = ls->s.guest_phys_addr,
	    .memory_size = ls->s.size,
	    .userspace_addr = (uintptr_t)ls->s.host,
	};

	if (ioctl(log->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		return kvm_log_errno(err,
				     on ? "KVM_SET_USER_MEMORY_REGION (dirty logging on)"
					: "KVM_SET_USER_MEMORY_REGION (dirty logging off)",
				     ls->s.slot);
	ls->logging = on;
	return 0;
}

static int kvm_log_enable_manual(struct tern_kvm_log *log, struct tern_error *err)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2};
	uint64_t want = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;

	if (log->caps & KVM_DIRTY_LOG_INITIALLY_SET)
		want |= KVM_DIRTY_LOG_INITIALLY_SET;
	cap.args[0] = want;
	/*
	 * KVM sets the mode again when it is on already (no error); EINVAL
	 * means it refused the options. Then try without INITIALLY_SET, which
	 * only costs a write-protect pass over each slot at the start.
	 */
	if (ioctl(log->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
		if (errno != EINVAL || !(want & KVM_DIRTY_LOG_INITIALLY_SET))
			return kvm_log_errno(err, "KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)",
					     UINT32_MAX);
		want = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
		cap.args[0] = want;
		if (ioctl(log->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return kvm_log_errno(err, "KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)",
					     UINT32_MAX);
	}
	log->manual = true;
	ST_SET(log, manual_protect, true);
	ST_SET(log, initially_set, (want & KVM_DIRTY_LOG_INITIALLY_SET) != 0);
	return 0;
}

static void kvm_log_disable_manual(struct tern_kvm_log *log)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2};

	/* Back to KVM's default. Nothing to report to: stop cannot fail. */
	cap.args[0] = 0;
	(void)ioctl(log->vm_fd, KVM_ENABLE_CAP, &cap);
	log->manual = false;
}

static void kvm_log_stop(void *opaque)
{
	struct tern_kvm_log *log = opaque;
	uint32_t i;

	for (i = 0; i < log->nslots; i++)
		if (log->slots[i].logging)
			(void)kvm_log_set_region(log, &log->slots[i], false, NULL);
	if (log->manual)
		kvm_log_disable_manual(log);
	/* The round that just ended has done all its clears. */
	ST_SET(log, last_round_clear_ns, log->round_clear_ns);
	log->round_clear_ns = 0;
	log->started = false;
}

static int kvm_log_start(void *opaque, struct tern_error *err)
{
	struct tern_kvm_log *log = opaque;
	uint32_t i;
	int ret;

	if (log->started)
		return tern_error_set(err, -EBUSY, "kvm dirty log: started already");
	log->started = true;
	if (log->caps & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
		ret = kvm_log_enable_manual(log, err);
		if (ret)
			goto err_stop;
	}
	for (i = 0; i < log->nslots; i++) {
		ret = kvm_log_set_region(log, &log->slots[i], true, err);
		if (ret)
			goto err_stop;
	}
	return 0;

err_stop:
	kvm_log_stop(log);
	return ret;
}

static int kvm_log_sync(void *opaque, struct tern_error *err)
{
	struct tern_kvm_log *log = opaque;
	uint64_t t0, ns = 0, dirty = 0;
	uint32_t i;
	int ret;

	for (i = 0; i < log->nslots; i++) {
		struct kvm_log_slot *ls = &log->slots[i];
		struct kvm_dirty_log dl = {.slot = ls->s.slot, .dirty_bitmap = ls->bitmap};
		uint64_t w;

		t0 = tern_now_ns();
		ret = ioctl(log->vm_fd, KVM_GET_DIRTY_LOG, &dl);
		ns += tern_now_ns() - t0;
		if (ret < 0)
			return kvm_log_errno(err, "KVM_GET_DIRTY_LOG", ls->s.slot);
		/* The kernel copies whole words: bits past the slot's end are
		 * never set, but do not rely on it. */
		if (ls->npages % 64)
			ls->bitmap[ls->npages / 64] &= ~0ull >> (64 - ls->npages % 64);
		for (w = 0; w < BITMAP_WORDS(ls->npages); w++)
			dirty += (uint64_t)__builtin_popcountll(ls->bitmap[w]);
		ret = tern_dirty_report(ls->s.block, ls->block_page, ls->bitmap, ls->npages);
		if (ret)
			return tern_error_set(err, ret,
					      "kvm dirty log: slot %u: handing %" PRIu64
					      " pages at block page %" PRIu64 " to the library: %s",
					      ls->s.slot, ls->npages, ls->block_page,
					      strerror(-ret));
	}
	ST_ADD(log, syncs, 1);
	ST_ADD(log, dirty_pages, dirty);
	ST_ADD(log, sync_ns, ns);
	ST_SET(log, last_sync_ns, ns);
	/* A sync opens a round: the previous round's clears are all done. */
	ST_SET(log, last_round_clear_ns, log->round_clear_ns);
	log->round_clear_ns = 0;
	return 0;
}

/*
 * Re-arm slot pages [@a, @e) with the bits the last sync fetched. Returns the
 * number of pages handed to KVM, or a negative errno.
 */
static int64_t kvm_log_clear_slot(struct tern_kvm_log *log, struct kvm_log_slot *ls, uint64_t a,
				  uint64_t e, struct tern_error *err)
{
	uint64_t a0 = a & ~63ull, e0 = MIN((e + 63) & ~63ull, ls->npages);
	uint64_t w, wa = a0 / 64, we = DIV_ROUND_UP(e0, 64), bits = 0, pos;

	/* Only the chunk's pages, and only those fetched dirty. */
	for (w = wa; w < we; w++) {
		uint64_t m = ~0ull;

		if (w == a / 64 && a % 64)
			m &= ~0ull << (a % 64);
		if (w == (e - 1) / 64 && e % 64)
			m &= ~0ull >> (64 - e % 64);
		ls->scratch[w] = ls->bitmap[w] & m;
		ls->bitmap[w] &= ~m; /* handed back: a second clear is a no-op */
		bits += (uint64_t)__builtin_popcountll(ls->scratch[w]);
	}
	if (!bits)
		return 0;
	/* num_pages is a u32: split huge ranges at multiples of 64. */
	for (pos = a0; pos < e0;) {
		uint64_t n = MIN(e0 - pos, KVM_LOG_CLEAR_MAX);
		struct kvm_clear_dirty_log cl = {
		    .slot = ls->s.slot,
		    .num_pages = (uint32_t)n,
		    .first_page = pos,
		    .dirty_bitmap = &ls->scratch[pos / 64],
		};

		if (ioctl(log->vm_fd, KVM_CLEAR_DIRTY_LOG, &cl) < 0)
			return kvm_log_errno(err, "KVM_CLEAR_DIRTY_LOG", ls->s.slot);
		ST_ADD(log, clears, 1);
		pos += n;
	}
	return (int64_t)bits;
}

static int kvm_log_clear(void *opaque, struct tern_ram_block *b, uint64_t first_page,
			 uint64_t npages, struct tern_error *err)
{
	struct tern_kvm_log *log = opaque;
	uint64_t end, t0, cleared = 0;
	uint32_t i;
	int64_t r;
	int ret = 0;

	/* Without manual protection (start fell back) GET_DIRTY_LOG re-armed. */
	if (!log->manual || !npages)
		return 0;
	end = first_page + npages < first_page ? UINT64_MAX : first_page + npages;
	t0 = tern_now_ns();
	for (i = 0; i < log->nslots; i++) {
		struct kvm_log_slot *ls = &log->slots[i];
		uint64_t lo, hi;

		if (ls->s.block != b)
			continue;
		lo = MAX(first_page, ls->block_page);
		hi = MIN(end, ls->block_page + ls->npages);
		if (lo >= hi)
			continue;
		r = kvm_log_clear_slot(log, ls, lo - ls->block_page, hi - ls->block_page, err);
		if (r < 0) {
			ret = (int)r;
			break;
		}
		cleared += (uint64_t)r;
	}
	t0 = tern_now_ns() - t0;
	log->round_clear_ns += t0;
	ST_ADD(log, clear_ns, t0);
	ST_ADD(log, cleared_pages, cleared);
	return ret;
}

static const struct tern_dirty_source_ops kvm_log_ops_manual = {
    .name = "kvm",
    .start = kvm_log_start,
    .sync = kvm_log_sync,
    .clear = kvm_log_clear,
    .stop = kvm_log_stop,
};

static const struct tern_dirty_source_ops kvm_log_ops_plain = {
    .name = "kvm",
    .start = kvm_log_start,
    .sync = kvm_log_sync,
    .stop = kvm_log_stop,
};

static int kvm_log_check_slots(const struct tern_kvm_slot *slots, uint32_t nslots,
			       struct tern_error *err)
{
	uint32_t i, j;

	for (i = 0; i < nslots; i++) {
		const struct tern_kvm_slot *s = &slots[i];
		uint64_t bsize;

		if (!s->size || s->size % KVM_LOG_PAGE)
			return tern_error_set(err, -EINVAL,
					      "kvm dirty log: slot %u: size %" PRIu64
					      " is not a non-zero multiple of 4096",
					      s->slot, s->size);
		if (s->guest_phys_addr % KVM_LOG_PAGE || !s->host ||
		    (uintptr_t)s->host % KVM_LOG_PAGE)
			return tern_error_set(err, -EINVAL,
					      "kvm dirty log: slot %u: guest address %#" PRIx64
					      " and host address %p must be page-aligned",
					      s->slot, s->guest_phys_addr, s->host);
		if (s->flags & KVM_MEM_LOG_DIRTY_PAGES)
			return tern_error_set(err, -EINVAL,
					      "kvm dirty log: slot %u is registered with "
					      "KVM_MEM_LOG_DIRTY_PAGES already; the log turns it "
					      "on and off itself",
					      s->slot);
		if (!s->block)
			return tern_error_set(err, -EINVAL,
					      "kvm dirty log: slot %u has no RAM block", s->slot);
		if (s->block_offset % KVM_LOG_PAGE)
			return tern_error_set(err, -EINVAL,
					      "kvm dirty log: slot %u: block offset %#" PRIx64
					      " is not page-aligned",
					      s->slot, s->block_offset);
		bsize = tern_ram_block_size(s->block);
		if (s->block_offset > bsize || s->size > bsize - s->block_offset)
			return tern_error_set(err, -ERANGE,
					      "kvm dirty log: slot %u: [%#" PRIx64 ", +%#" PRIx64
					      ") does not fit in RAM block '%s' (%#" PRIx64
					      " bytes)",
					      s->slot, s->block_offset, s->size,
					      tern_ram_block_name(s->block), bsize);
		for (j = 0; j < i; j++)
			if (slots[j].slot == s->slot)
				return tern_error_set(err, -EEXIST,
						      "kvm dirty log: slot %u is listed twice",
						      s->slot);
	}
	return 0;
}

TERN_EXPORT void tern_kvm_log_free(struct tern_kvm_log *log)
{
	uint32_t i;

	if (!log)
		return;
	if (log->started)
		kvm_log_stop(log);
	for (i = 0; log->slots && i < log->nslots; i++) {
		bitmap_free(log->slots[i].bitmap);
		bitmap_free(log->slots[i].scratch);
	}
	free(log->slots);
	free(log);
}

TERN_EXPORT int tern_kvm_log_new(int vm_fd, const struct tern_kvm_slot *slots, uint32_t nslots,
				 struct tern_kvm_log **ret_log, struct tern_error *err)
{
	struct tern_kvm_log *log;
	uint32_t i;
	int ret;

	if (!ret_log)
		return tern_error_set(err, -EINVAL, "kvm dirty log: ret_log is NULL");
	if (vm_fd < 0)
		return tern_error_set(err, -EBADF, "kvm dirty log: bad vm fd %d", vm_fd);
	if (!nslots || !slots)
		return tern_error_set(err, -EINVAL, "kvm dirty log: no memslots");
	ret = kvm_log_check_slots(slots, nslots, err);
	if (ret)
		return ret;

	log = calloc(1, sizeof(*log));
	if (!log)
		return tern_error_set(err, -ENOMEM, "kvm dirty log: out of memory");
	log->vm_fd = vm_fd;
	log->slots = calloc(nslots, sizeof(*log->slots));
	if (!log->slots) {
		ret = tern_error_set(err, -ENOMEM, "kvm dirty log: out of memory");
		goto err_free;
	}
	log->nslots = nslots;
	for (i = 0; i < nslots; i++) {
		struct kvm_log_slot *ls = &log->slots[i];

		ls->s = slots[i];
		ls->npages = slots[i].size / KVM_LOG_PAGE;
		ls->block_page = slots[i].block_offset / KVM_LOG_PAGE;
		ls->bitmap = bitmap_new(ls->npages);
		ls->scratch = bitmap_new(ls->npages);
		if (!ls->bitmap || !ls->scratch) {
			ret = tern_error_set(err, -ENOMEM,
					     "kvm dirty log: out of memory for slot %u's bitmap",
					     ls->s.slot);
			goto err_free;
		}
	}

	/* A mask: MANUAL_PROTECT_ENABLE, INITIALLY_SET; 0 on kernels before 5.5. */
	ret = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	if (ret < 0) {
		ret = tern_error_set(err, -errno,
				     "kvm dirty log: KVM_CHECK_EXTENSION"
				     "(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) on vm fd %d: %s",
				     vm_fd, strerror(errno));
		goto err_free;
	}
	log->caps = (uint64_t)ret;
	*ret_log = log;
	return 0;

err_free:
	tern_kvm_log_free(log);
	return ret;
}

TERN_EXPORT int tern_kvm_log_attach(struct tern_session *s, struct tern_kvm_log *log,
				    struct tern_error *err)
{
	if (!s || !log)
		return tern_error_set(err, -EINVAL,
				      "kvm dirty log: attach needs a session and a log");
	if (log->started)
		return tern_error_set(err, -EBUSY, "kvm dirty log: in use by a migration");
	return tern_dirty_source_add(s,
				     (log->caps & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)
					 ? &kvm_log_ops_manual
					 : &kvm_log_ops_plain,
				     log, err);
}

TERN_EXPORT void tern_kvm_log_stats(struct tern_kvm_log *log, struct tern_kvm_log_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (!log)
		return;
	ret->manual_protect = ST_GET(log, manual_protect);
	ret->initially_set = ST_GET(log, initially_set);
	ret->syncs = ST_GET(log, syncs);
	ret->dirty_pages = ST_GET(log, dirty_pages);
	ret->clears = ST_GET(log, clears);
	ret->cleared_pages = ST_GET(log, cleared_pages);
	ret->sync_ns = ST_GET(log, sync_ns);
	ret->clear_ns = ST_GET(log, clear_ns);
	ret->last_sync_ns = ST_GET(log, last_sync_ns);
	ret->last_round_clear_ns = ST_GET(log, last_round_clear_ns);
}
