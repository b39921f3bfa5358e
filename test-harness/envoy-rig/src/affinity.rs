//! CPU affinity (Linux `sched_setaffinity`), for benchmarks that pin Envoy to
//! one core and the load generator and upstream to another.
//!
//! Affinity is per thread on Linux and inherited by threads and processes
//! created afterwards, so pinning the current thread before spawning pins what
//! it spawns too.

use std::io;

/// A set of CPUs, built before a fork so that the child only has to make one
/// system call.
#[derive(Clone, Copy)]
pub(crate) struct CpuSet {
    #[cfg(target_os = "linux")]
    set: libc::cpu_set_t,
}

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuSet").finish_non_exhaustive()
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // The libc CPU_* helpers and the affinity calls are unsafe.
mod imp {
    use std::io;

    use super::CpuSet;

    /// How many CPUs a `cpu_set_t` can name.
    fn capacity() -> usize {
        usize::try_from(libc::CPU_SETSIZE).unwrap_or(0)
    }

    impl CpuSet {
        pub(crate) fn new(cpus: &[usize]) -> io::Result<Self> {
            if cpus.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an empty CPU set pins to nothing",
                ));
            }
            // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            for &cpu in cpus {
                if cpu >= capacity() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("CPU {cpu} is beyond CPU_SETSIZE ({})", capacity()),
                    ));
                }
                // SAFETY: `cpu` is below CPU_SETSIZE, checked above.
                unsafe { libc::CPU_SET(cpu, &mut set) };
            }
            Ok(Self { set })
        }

        /// Pins the calling thread (and what it spawns later) to this set.
        ///
        /// Async-signal-safe: one system call, no allocation, so it may run in
        /// a `pre_exec` closure.
        pub(crate) fn apply_to_current_thread(&self) -> io::Result<()> {
            // SAFETY: a valid, initialised set of the size passed; pid 0 is the caller.
            let rc = unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.set)
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
    }

    pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
        // SAFETY: as above, a zeroed `cpu_set_t` is valid.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: every index is below CPU_SETSIZE.
        Ok((0..capacity())
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    use super::CpuSet;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "CPU affinity is only supported on Linux",
        )
    }

    impl CpuSet {
        pub(crate) fn new(_cpus: &[usize]) -> io::Result<Self> {
            Err(unsupported())
        }

        pub(crate) fn apply_to_current_thread(&self) -> io::Result<()> {
            Err(unsupported())
        }
    }

    pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
        Err(unsupported())
    }
}

/// The CPUs the calling thread may run on, in ascending order.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    imp::allowed_cpus()
}

/// Pins the calling thread to `cpus`; threads and processes it spawns later inherit it.
pub(crate) fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    CpuSet::new(cpus)?.apply_to_current_thread()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_current_thread_may_run_somewhere() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }

    #[test]
    fn pinning_a_fresh_thread_narrows_its_cpus() {
        let first = allowed_cpus().unwrap()[0];
        // A thread of its own, so the test runner's threads stay unpinned.
        let seen = std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            allowed_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![first]);
    }

    #[test]
    fn out_of_range_and_empty_sets_are_refused() {
        assert!(CpuSet::new(&[]).is_err());
        assert!(CpuSet::new(&[usize::MAX]).is_err());
    }
}
