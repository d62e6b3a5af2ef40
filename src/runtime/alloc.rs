//! The binary's global allocator: the system allocator, except that a single allocation of 1 GiB
//! or more is an anonymous `MAP_NORESERVE` mapping, which the kernel grants as address space
//! and backs with memory only when touched.
//!
//! Why: the `kafka-protocol` decoders call `Vec::with_capacity(n)` with an array length `n` read
//! from the request before reading a single element. A 20-byte request claiming four billion
//! elements asks for hundreds of GB; from the system allocator that fails, and a failed
//! allocation aborts the whole process. As reserved address space it succeeds, the decoder then
//! finds the bytes missing and returns an error, and the mapping is returned untouched. The real
//! fix is to check claimed lengths against the bytes left (the fuzzing issue); this keeps one
//! hostile request from killing the node until then. Nothing legitimate in ketch allocates 1 GiB
//! at once.

use std::alloc::{GlobalAlloc, Layout, System};

const RESERVE_THRESHOLD_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

/// See the module documentation.
pub struct GuardedAlloc;

fn reserved(layout: &Layout) -> bool {
    layout.size() >= RESERVE_THRESHOLD_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: every path returns memory valid for `layout` (or null on failure) and frees it with
// the mechanism that allocated it; `reserved` depends only on the layout, which Rust passes
// unchanged to `dealloc`.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if reserved(&layout) {
            // SAFETY: an anonymous private mapping touches no existing memory.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return std::ptr::null_mut();
            }
            return p.cast();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if reserved(&layout) {
            // SAFETY: `ptr` came from the mmap above with this size.
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
            return;
        }
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if reserved(&layout) {
            // Anonymous mappings are zero-filled.
            // SAFETY: as `alloc`.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
}
