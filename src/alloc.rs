//! The process allocator: mimalloc, entered through its plain entry points.
//!
//! mimalloc rather than glibc's allocator: a proxied request makes about seventeen allocations
//! (hyper's buffers and header maps, the request's future), and glibc's slow path for blocks over
//! 1 KiB dominates them. callgrind, user-space instructions per request: keep-alive GET −6.5 %, a
//! new connection per request −17 %. The price is some resident memory: freed pages are kept for
//! reuse a while (`docs/benchmarks.md`); idle WebSocket connections cost the same.
//!
//! The `mimalloc` crate's allocator passes every request to `mi_malloc_aligned`, whose fast path
//! covers only blocks of at most 1 KiB; larger ones (hyper's 8 KiB read buffers, the request's
//! future) take its generic path, which over-allocates and marks the page as holding interior
//! pointers, slowing their frees too. Every block `mi_malloc` returns is aligned to a machine word
//! (its smallest block is one word, and blocks of a page are laid out from a word-aligned start in
//! steps of whole words), so requests that need no more go there directly, and only the rare larger
//! alignments take the aligned entry points (callgrind, keep-alive GET: see `docs/benchmarks.md`).
//!
//! mimalloc is built without transparent huge pages (`libmimalloc-sys`'s `no_thp`). With them it
//! asks the kernel for huge pages on its arenas (`MADV_HUGEPAGE`), so every 2 MiB region it touches
//! becomes resident whole: half of the proxy's memory at start-up (6 of 12 MiB) and a third of its
//! peak under small-request load (16 against 11 MiB), for no measurable gain in CPU time.
//!
//! mimalloc 2 (`libmimalloc-sys`'s `v2`) rather than the crate's default 3: version 3 reaches
//! every thread's heap through one more indirection and takes its generic path (collecting freed
//! blocks) more often. callgrind, user-space instructions: −0.2 k per keep-alive GET (of 30.4 k),
//! −0.7 k per new connection (of 39.6 k); memory per idle WebSocket connection and peak RSS under
//! 1 MiB uploads unchanged. jemalloc (`tikv-jemallocator`) was tried as well: +2.2 k and +9 k.

// The one module that needs `unsafe`: a global allocator is an `unsafe` trait whose methods
// receive raw pointers.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// What every `mi_malloc` block is aligned to, whatever its size: a machine word. (Blocks of 16
/// bytes or more are often aligned to 16, but not all: a 24-byte block is not.)
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc as the global allocator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MiMalloc;

// SAFETY: each method forwards to the mimalloc function with the same contract (a block of at
// least `size` bytes aligned to at least `align`, or null; `mi_free` takes any block mimalloc
// returned). Blocks from `mi_malloc`, `mi_zalloc` and `mi_realloc` are aligned to `PLAIN_ALIGN`,
// so those serve layouts needing no more; the rest go to the aligned functions.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl; the size is non-zero as `GlobalAlloc` requires of callers.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its alignment.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path keeps the alignment asked for and the bytes written, including the aligned
    /// entry points taken for alignments over a word, and sizes whose blocks are not aligned to
    /// 16 (the reason `PLAIN_ALIGN` is a word).
    #[test]
    fn blocks_are_aligned_and_keep_their_contents() {
        let a = MiMalloc;
        for align in [1, 8, 16, 32, 64, 4096] {
            for size in [1, 24, 40, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; every block is freed with the layout it was made with.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc: size {size} align {align}");
                    assert!(
                        (0..size).all(|i| *q.add(i) == 0xa5),
                        "realloc kept the bytes"
                    );
                    a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());

                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed: size {size} align {align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "zeroed block is zero");
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
