package weights

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"
)

// TestMapFileOnHugePageBoundary checks mapFile: the mapping starts on a 2 MiB boundary (so that
// the kernel can map the page cache's 2 MiB folios whole), holds the file's bytes, and mapping
// and unmapping files of several sizes leaves no address-space reservation behind (the count of
// mappings in /proc/self/maps returns to where it was).
func TestMapFileOnHugePageBoundary(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{1, 4095, 4096, 4097, hugePage - 1, hugePage, hugePage + 4096, 3*hugePage + 123}
	before := countMappings(t)
	for round := 0; round < 3; round++ {
		for _, size := range sizes {
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i*7 + size)
			}
			path := filepath.Join(dir, "f.bin")
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			fd, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			data, err := mapFile(int(fd.Fd()), size)
			fd.Close()
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if addr := uintptr(unsafe.Pointer(unsafe.SliceData(data))); addr%hugePage != 0 {
				t.Errorf("size %d: mapped at %#x, not a multiple of 2 MiB", size, addr)
			}
			if !bytes.Equal(data, want) {
				t.Errorf("size %d: mapped bytes differ from the file's", size)
			}
			if err := unmapFile(data); err != nil {
				t.Fatalf("size %d: unmap: %v", size, err)
			}
		}
	}
	if after := countMappings(t); after > before+2 { // the runtime may map a little meanwhile
		t.Errorf("/proc/self/maps has %d mappings after mapping and unmapping %d files, %d before: reservations leak", after, 3*len(sizes), before)
	}
}

// countMappings counts the lines of /proc/self/maps (skipping the test where there is none).
func countMappings(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("no /proc/self/maps on " + runtime.GOOS)
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("reading /proc/self/maps: %v", err)
	}
	return bytes.Count(b, []byte("\n"))
}
