#!/usr/bin/env python3
"""Put model files in the same page-cache state before a benchmark, and report that state.

How a file's pages sit in the page cache decides whether a mapping of it can use 2 MiB
page-table entries, and both tether and llama.cpp map their weights: tether's bf16 test model
decoded at 0.90 to 0.93 of a heap copy while its file sat in 4 KiB folios, and llama.cpp's F16
went from 104-111 to 124-128 tokens/s once its GGUF had been read again (docs/cpu-backend.md). A file written in small pieces (or read in small pieces) sits in 4 KiB
folios until it leaves the cache, so which engine wins can depend on how each file was written.
For each FILE this script drops its clean pages from the cache (fsync, then
posix_fadvise(DONTNEED): no root needed), reads it back sequentially 8 MiB at a time (the page
cache then holds it in large folios where the filesystem supports them), maps it, touches every
page and prints how much of the mapping the kernel mapped with 2 MiB entries (FilePmdMapped of
/proc/self/smaps). Standard library only; Linux.

Usage: python3 scripts/page_cache.py FILE...
"""

import mmap
import os
import sys


def pmd_mapped_kib(path):
    """FilePmdMapped (KiB) of this process's mappings of path (from /proc/self/smaps)."""
    real = os.path.realpath(path)
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and all(c in "0123456789abcdef-" for c in head[0]):
                inside = len(head) >= 6 and " ".join(head[5:]) == real
            elif inside and line.startswith("FilePmdMapped:"):
                total += int(head[1])
    return total


def settle(path):
    """Drop path's pages from the cache, read it back, and return its size and FilePmdMapped."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 8 << 20):
            pass
        size = os.fstat(fd).st_size
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        try:
            for off in range(0, size, 4096):
                m[off]
            kib = pmd_mapped_kib(path)
        finally:
            m.close()
    finally:
        os.close(fd)
    return size, kib


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        size, kib = settle(path)
        print("%s: %.0f MiB, %.0f MiB of it mapped with 2 MiB entries after a fresh read" % (path, size / 2**20, kib / 1024))


if __name__ == "__main__":
    main()
