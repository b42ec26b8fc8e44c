//! The program's own tuning of glibc's malloc, set before any thread
//! starts.  The library never does this: a program linking it (C, Guile)
//! keeps the malloc it has, and may set the same with `mallopt` or glibc's
//! `MALLOC_MMAP_THRESHOLD_` and `MALLOC_ARENA_MAX` environment variables.
//!
//! Why.  A build allocates and frees large buffers for every layer (an
//! upload's 8 MiB chunks, zstd's 8 MiB input ring and 2 MiB output
//! buffers, gzip's 1 MiB blocks and members), on threads that come and go
//! (a layer's compression workers, its upload's thread).  glibc's default
//! mmap threshold rises to the largest block freed (up to 32 MiB), so after
//! the first layer these buffers come from the heaps instead of their own
//! mappings, and each thread gets a heap (an arena) of its own, up to 8 per
//! core: freed blocks stay resident, spread over the arenas.  A push of the
//! benchmark's 1 GiB store with 100 layers peaked at 95 to 108 MiB
//! resident for about 74 MiB allocated at most (heaptrack); with a fixed
//! threshold of 4 MiB and one arena, at 77 MiB (zstd) and 67 MiB (gzip),
//! for no measurable CPU time (bench/README.md, "Push").  A fixed threshold
//! also keeps glibc's trim threshold at its default, so the heap's free
//! top goes back to the system too.

/// Blocks of this size or more get mappings of their own, unmapped when
/// freed: the chunks and zstd's input ring, not gzip's 1 MiB blocks
/// (mapping those costs system time for every MiB compressed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 4 << 20;

/// Sets the threshold and the arenas, each unless glibc's environment
/// variable for it is set (a user's choice, and how the default is
/// measured); call it first thing in `main`.  A failure changes nothing but
/// the memory used, so it is not reported.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (variable, parameter, value) in
        [("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD), ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1)]
    {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt only sets an allocator parameter; no other
            // thread exists yet.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}
