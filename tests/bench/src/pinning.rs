//! `--pin`: zero-cache and its PostgreSQL on one core, everything upstream of it on the other.
//!
//! On a 2-core machine every path shares the cores with zero-cache, but not equally: the
//! ceiling has no database behind it, while our path also runs mongod and source-server. A run
//! with zero-cache's side (its process tree and PostgreSQL, which holds its change log) pinned
//! to CPU 0 and the upstream side (this process, mongod, source-server, the ceiling's send loop)
//! to CPU 1 gives every path the same one core for zero-cache, which is what separate pods or
//! machines give it in production. The pins are made with `taskset` (util-linux), so no
//! dependency is added for them; affinity is inherited on `fork` and on thread creation, so a
//! process pinned before it forks carries its pin to its children.

use std::process::Command;

use anyhow::{Context, bail};

/// zero-cache's side: its processes and PostgreSQL.
pub const ZERO_CACHE_CPUS: &str = "0";
/// The upstream side: the bench itself and everything it starts besides the above.
pub const UPSTREAM_CPUS: &str = "1";

/// Fails unless CPUs 0 and 1 exist.
pub fn check_machine() -> anyhow::Result<()> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n < 2 {
        bail!("--pin needs at least 2 CPUs (this machine offers {n})");
    }
    Ok(())
}

/// Pins every thread of `pid` and of each of its descendants to `cpus`.
pub fn pin_tree(pid: u32, cpus: &str) -> anyhow::Result<()> {
    for p in super::sampler::tree(pid) {
        let out = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &p.to_string()])
            .output()
            .context("running taskset (util-linux) for --pin")?;
        // A descendant that exited meanwhile is no longer there to pin.
        if !out.status.success() && std::path::Path::new(&format!("/proc/{p}")).exists() {
            bail!(
                "taskset -a -p -c {cpus} {p}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Pins this process (every thread it has; threads and children it makes later inherit it).
pub fn pin_self(cpus: &str) -> anyhow::Result<()> {
    pin_tree(std::process::id(), cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_cpus(pid: u32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn a_pinned_process_and_the_child_it_forks_afterwards_run_only_on_those_cpus() {
        // A shell that waits, then forks a child: the child must inherit the pin.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 0.5; sleep 5 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        pin_tree(sh.id(), "0").unwrap();
        assert_eq!(allowed_cpus(sh.id()), "0");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(sh.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let child: u32 = line.trim().parse().unwrap();
        let child_cpus = allowed_cpus(child);
        // Stop both by pid before asserting, so that a failure leaves nothing running.
        let _ = Command::new("kill").arg(child.to_string()).status();
        let _ = sh.kill();
        let _ = sh.wait();
        assert_eq!(child_cpus, "0");
    }
}
