/* SPDX-License-Identifier: MIT */
/*
 * The KVM dirty-log provider where the build has no linux/kvm.h (or the kvm
 * option is disabled): the API links, and says why it cannot work.
 */
#include "tern/kvm.h"
#include "util/util.h"

TERN_EXPORT int tern_kvm_log_new(int vm_fd, const struct tern_kvm_slot *slots, uint32_t nslots,
				 struct tern_kvm_log **ret_log, struct tern_error *err)
{
	return tern_error_set(err, -ENOSYS,
			      "kvm dirty log: libtern was built without KVM support "
			      "(no linux/kvm.h, or -Dkvm=disabled)");
}

TERN_EXPORT int tern_kvm_log_attach(struct tern_session *s, struct tern_kvm_log *log,
				    struct tern_error *err)
{
	return tern_error_set(err, -ENOSYS, "kvm dirty log: libtern was built without KVM support");
}

TERN_EXPORT void tern_kvm_log_free(struct tern_kvm_log *log)
{
}

TERN_EXPORT void tern_kvm_log_stats(struct tern_kvm_log *log, struct tern_kvm_log_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
}
