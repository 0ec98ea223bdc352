//go:build !linux

package kernels

// haveFutex: no futex here; waitWord always sleeps on its sync.Cond.
const haveFutex = false

func futexSleep(*uint32, uint32) { panic("kernels: futexSleep without a futex") }

func futexWakeAll(*uint32) {}
