//! Peak memory and CPU of a process *tree*: zero-cache is a Node process that forks its
//! change-streamer, replicator and sync workers, so neither its own `VmHWM` nor its own CPU
//! time says what it costs. A task samples `/proc` every [`INTERVAL`] and keeps the largest sum
//! of resident sets and, per process, the last CPU time seen (a worker that exits keeps what it
//! used before it went).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::probes::{cpu_secs, parse_cpu_ticks};

const INTERVAL: Duration = Duration::from_millis(100);

/// The tree is found again (a scan of all of `/proc`) every this many samples; in between only
/// its known processes are read, so the sampler costs little CPU itself.
const RESCAN_EVERY: u32 = 10;

#[derive(Default)]
struct Seen {
    peak_rss: u64,
    /// CPU seconds per pid when first and last seen.
    cpu: HashMap<u32, (f64, f64)>,
}

pub struct TreeSampler {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a tree used while it was sampled.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TreeUsage {
    pub peak_rss: u64,
    /// CPU seconds the tree spent while sampled (for processes there at the start, counted
    /// from then).
    pub cpu_secs: f64,
}

impl TreeSampler {
    pub fn start(root: u32) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let mut pids = Vec::new();
            for k in 0u32.. {
                if k % RESCAN_EVERY == 0 {
                    pids = tree(root);
                }
                sample(&pids, &s);
                tokio::time::sleep(INTERVAL).await;
            }
        });
        Self { seen, task }
    }

    pub fn finish(self) -> TreeUsage {
        self.task.abort();
        let seen = self.seen.lock().expect("sampler lock");
        TreeUsage {
            peak_rss: seen.peak_rss,
            cpu_secs: seen.cpu.values().map(|(first, last)| last - first).sum(),
        }
    }
}

fn sample(pids: &[u32], seen: &Mutex<Seen>) {
    let mut rss = 0;
    let mut cpus = Vec::new();
    for &pid in pids {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            rss += vm_rss(&status).unwrap_or(0);
        }
        if let Ok(c) = cpu_secs(Some(pid)) {
            cpus.push((pid, c));
        }
    }
    let mut s = seen.lock().expect("sampler lock");
    s.peak_rss = s.peak_rss.max(rss);
    let first_sample = s.cpu.is_empty();
    for (pid, c) in cpus {
        // A process born after the first sample counts from zero: all it used is inside.
        let start = if first_sample { c } else { 0.0 };
        s.cpu.entry(pid).or_insert((start, c)).1 = c;
    }
}

/// `root` and every descendant, from the parent pids in `/proc/*/stat`.
pub fn tree(root: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some(ppid) = parse_ppid(&stat)
            {
                parent.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// Field 4 of `/proc/PID/stat`, counted after the command name's closing parenthesis.
fn parse_ppid(stat: &str) -> Option<u32> {
    // Checked the same way as the CPU fields, so a malformed line gives None for both.
    parse_cpu_ticks(stat)?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_and_rss_are_read() {
        let stat = "42 (a b) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_ppid(stat), Some(7));
        assert_eq!(vm_rss("VmHWM:\t 9 kB\nVmRSS:\t  12 kB\n"), Some(12 * 1024));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_this_process() {
        let s = TreeSampler::start(std::process::id());
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Busy until this process has used 0.25 s of CPU (bounded: the machine may be busy).
        let t = std::time::Instant::now();
        let cpu0 = cpu_secs(None).unwrap();
        let mut x = 0u64;
        while cpu_secs(None).unwrap() - cpu0 < 0.25 && t.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let u = s.finish();
        assert!(x > 0);
        assert!(u.peak_rss > 1 << 20, "{u:?}");
        assert!(u.cpu_secs > 0.1, "{u:?}");
    }
}
