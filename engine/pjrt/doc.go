// Package pjrt is the engine's plumbing for XLA's PJRT plugins: it finds a
// plugin file installed locally (FindPlugin; plugins are never downloaded),
// prepares the NVIDIA libraries pip installs beside a CUDA plugin
// (CUDASetupFor), parses the PJRT client options of a backend name, reads
// nvidia-smi's device report (QueryNvidiaSMI) and opens GoMLX's XLA backend
// with all of it (Open; cgo builds only). The engine's NewBackend chooses
// between this and the pure-Go backend.
package pjrt
