//! Giving back to the system the memory the streaming pass has freed.

/// Once every capture has been read and joined, the capture threads' trackers, tombstones and
/// blocks are freed, but glibc keeps freed memory in each thread's malloc arena, resident. The
/// analysis that follows (the fairness replay's tables of live entries) then grows on top of
/// it: on a million connections `verify` peaked 10 MB higher, and by a different amount from
/// run to run (126-136 MB; 125 MB with the trim). `malloc_trim` returns the free pages of
/// every arena; elsewhere than glibc this does nothing.
pub(super) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases memory that is already free.
    unsafe {
        libc::malloc_trim(0);
    }
}
