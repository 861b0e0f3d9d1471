//! CPU time and RSS of a process and all its descendants, from /proc (Linux).

use std::collections::HashMap;

/// CPU seconds (user + system, all threads) and resident memory of a process tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    /// Sum of VmRSS, KiB.
    pub rss_kib: u64,
}

/// (ppid, cpu ticks, rss pages) from one /proc/<pid>/stat line.
fn parse_stat(text: &str) -> Option<(i32, u64, u64)> {
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state=0, ppid=1, utime=11, stime=12, rss=21.
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let rss = f.get(21)?.parse().ok()?;
    Some((ppid, ticks, rss))
}

/// Usage of `root` and its descendants now; None when `root` is gone.
pub fn usage_tree(root: i32) -> Option<Usage> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page_kib = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) / 1024) as u64;
    let mut procs: HashMap<i32, (i32, u64, u64)> = HashMap::new();
    let dir = std::fs::read_dir("/proc").ok()?;
    for e in dir.flatten().take(100_000) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(s) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            procs.insert(pid, s);
        }
    }
    procs.get(&root)?;
    let mut total_ticks = 0;
    let mut total_rss = 0;
    for (pid, (_, ticks, rss)) in &procs {
        // Walk up at most 64 levels to see whether `root` is an ancestor.
        let mut p = *pid;
        let mut inside = false;
        for _ in 0..64 {
            if p == root {
                inside = true;
                break;
            }
            match procs.get(&p) {
                Some((pp, _, _)) if *pp > 0 => p = *pp,
                _ => break,
            }
        }
        if inside {
            total_ticks += ticks;
            total_rss += rss;
        }
    }
    Some(Usage {
        cpu_s: total_ticks as f64 / hz,
        rss_kib: total_rss * page_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_comm() {
        let line = "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 2 0 500 1000 25 18446744073709551615";
        assert_eq!(parse_stat(line), Some((1, 10, 25)));
    }

    #[test]
    fn own_process_is_visible() {
        let u = usage_tree(std::process::id() as i32).unwrap();
        assert!(u.rss_kib > 0);
    }
}
