package weights

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page (2 MiB with 4 KiB base pages, amd64 and arm64).
const hugePage = 2 << 20

// mapFile maps the first size bytes of the open file fd read-only and shared, at an address that
// is a multiple of hugePage, and asks for transparent huge pages (MADV_HUGEPAGE). With file
// offsets and addresses equal modulo 2 MiB the kernel can map each 2 MiB folio of the page cache
// with one page-table entry: a decode step streams every weight once, and with 4 KiB entries it
// is slower (measured on this project's VM: a SmolLM2-135M-shaped bf16 checkpoint in 4 KiB
// folios decoded at 0.90 to 0.93 of the same weights copied into the heap, and level with them
// once its folios were large; docs/cpu-backend.md). Where the kernel has no huge pages for the file (small folios already in
// the page cache, a filesystem without large folios, THP off) the advice does nothing.
func mapFile(fd int, size int) ([]byte, error) {
	// Reserve size+hugePage bytes of address space, map the file over the reservation from its
	// first 2 MiB boundary, then give back the rest of the reservation.
	span := uintptr(size) + hugePage
	res, err := unix.MmapPtr(-1, 0, nil, span, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("mmap (address reservation of %d bytes): %w", span, err)
	}
	base := uintptr(res)
	lead := (hugePage - base%hugePage) % hugePage
	at := unsafe.Add(res, lead)
	addr, err := unix.MmapPtr(fd, 0, at, uintptr(size), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_FIXED)
	if err != nil {
		_ = unix.MunmapPtr(res, span)
		return nil, fmt.Errorf("mmap: %w", err)
	}
	if lead > 0 {
		_ = unix.MunmapPtr(res, lead)
	}
	pageSize := uintptr(unix.Getpagesize())
	mapped := (uintptr(size) + pageSize - 1) &^ (pageSize - 1) // the file mapping's own extent
	if end := lead + mapped; end < span {
		_ = unix.MunmapPtr(unsafe.Add(res, end), span-end)
	}
	data := unsafe.Slice((*byte)(addr), size)
	adviseHugePages(data)
	return data, nil
}

// unmapFile undoes mapFile.
func unmapFile(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(data)), uintptr(len(data)))
}
