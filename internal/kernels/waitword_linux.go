package kernels

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// haveFutex: waitWord can sleep in the kernel.
const haveFutex = true

// The futex operations (linux/futex.h: FUTEX_WAIT 0 and FUTEX_WAKE 1, with FUTEX_PRIVATE_FLAG
// 128), which x/sys/unix does not name.
const (
	futexWaitPrivate = 0 | 128
	futexWakePrivate = 1 | 128
)

// futexSleep blocks while *addr == old (or until a wake, a signal or a spurious return).
func futexSleep(addr *uint32, old uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitPrivate, uintptr(old), 0, 0, 0)
}

// futexWakeAll wakes every thread sleeping on addr.
func futexWakeAll(addr *uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakePrivate, uintptr(1<<31-1), 0, 0, 0)
}
