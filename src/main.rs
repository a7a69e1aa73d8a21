//! The `feedsieve` binary: everything is in the library; see `feedsieve::cli`.

fn main() -> std::process::ExitCode {
    fix_malloc_mmap_threshold();
    feedsieve::cli::main()
}

/// glibc serves allocations above a threshold with their own `mmap`, and raises the threshold
/// to the size of each such block freed (up to 32 MiB). The sieve's group commits free blocks
/// of a few MB, after which blocks of that size come from the heap arenas and fragment them: a
/// 10,000-feed cycle peaked at 181 to 183 MB with the moving threshold and at 154 to 176 MB
/// (median 163) with it fixed at 256 KiB, for the same CPU (README, "One polling cycle over
/// 10,000 feeds").
fn fix_malloc_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets one of malloc's parameters; it is called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
