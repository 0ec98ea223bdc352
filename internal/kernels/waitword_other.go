//go:build !linux

package kernels

import (
	"sync"
	"sync/atomic"
)

// sleeper sleeps and wakes with a sync.Cond where there is no futex.
type sleeper struct {
	once sync.Once
	mu   sync.Mutex
	cond *sync.Cond
}

func (s *sleeper) init() { s.once.Do(func() { s.cond = sync.NewCond(&s.mu) }) }

// sleep blocks while *addr == old (or until a wake).
func (s *sleeper) sleep(addr *uint32, old uint32) {
	s.init()
	s.mu.Lock()
	for atomic.LoadUint32(addr) == old {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

// wakeAll wakes every goroutine sleeping on addr.
func (s *sleeper) wakeAll(*uint32) {
	s.init()
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}
