package weights

import "golang.org/x/sys/unix"

// adviseHugePages asks for transparent huge pages over data (MADV_HUGEPAGE); the advice is a
// hint, and its error (EINVAL where the kernel has no THP) is ignored.
func adviseHugePages(data []byte) { _ = unix.Madvise(data, unix.MADV_HUGEPAGE) }
