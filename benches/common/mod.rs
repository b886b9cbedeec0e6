//! What the benchmarks share: the workload's data, timing, the report, and running Python.

#![allow(dead_code)] // each benchmark uses part of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

/// A size from the environment, or `default`.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The value stored under key `i` (BENCHMARKS.md).
pub(crate) fn value(i: usize) -> Value {
    json!({"name": format!("User{i}"), "age": i, "tags": ["admin", "active"], "active": true})
}

/// The benchmark value as a struct, for the typed reads.
#[derive(Deserialize, Clone)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) age: u64,
    pub(crate) tags: Vec<String>,
    pub(crate) active: bool,
}

pub(crate) fn key(i: usize) -> String {
    format!("key_{i}")
}

/// `name` in `dir`, with any database files of an earlier round removed.
pub(crate) fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

pub(crate) fn timed(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

/// Rates of every repetition, by workload and system; printed as medians with ratios.
#[derive(Default)]
pub(crate) struct Results {
    rates: BTreeMap<(String, String), Vec<f64>>,
}

impl Results {
    pub(crate) fn add(&mut self, system: &str, workload: &str, ops: usize, elapsed: Duration) {
        let rate = ops as f64 / elapsed.as_secs_f64();
        self.rates.entry((workload.to_owned(), system.to_owned())).or_default().push(rate);
    }

    /// Prints every rate as a JSON line, for the parent process to [`absorb`](Self::absorb).
    pub(crate) fn emit(&self) {
        for ((workload, system), rates) in &self.rates {
            for rate in rates {
                println!("{}", serde_json::json!({"system": system, "workload": workload, "rate": rate}));
            }
        }
    }

    /// Adds the rates a child process printed with [`emit`](Self::emit) (its other lines are
    /// skipped).
    pub(crate) fn absorb(&mut self, output: &str) {
        #[derive(Deserialize)]
        struct Rate {
            system: String,
            workload: String,
            rate: f64,
        }
        for line in output.lines().filter(|line| line.starts_with('{')) {
            let Rate { system, workload, rate } = serde_json::from_str(line).expect("a rate per line");
            self.rates.entry((workload, system)).or_default().push(rate);
        }
    }

    pub(crate) fn median(&self, workload: &str, system: &str) -> Option<f64> {
        let mut rates = self.rates.get(&(workload.to_owned(), system.to_owned()))?.clone();
        rates.sort_by(f64::total_cmp);
        Some(rates[rates.len() / 2])
    }

    /// One line per workload and system: median [min–max], then the ratio to each of
    /// `baselines` (a variant such as "W3 hot get (shared)" is compared with "W3 hot get").
    pub(crate) fn print(&self, title: &str, baselines: &[&str]) {
        println!("{title}; ops/s, median [min–max] of the repetitions");
        let mut header = format!("{:<28} {:<22} {:>24}", "workload", "system", "ops/s");
        baselines.iter().for_each(|b| header.push_str(&format!(" {:>14}", format!("vs {b}"))));
        println!("{header}");
        for ((workload, system), rates) in &self.rates {
            let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let max = rates.iter().copied().fold(0.0, f64::max);
            let median = self.median(workload, system).unwrap_or_default();
            let spread = format!("{} [{}–{}]", human(median), human(min), human(max));
            let mut line = format!("{workload:<28} {system:<22} {spread:>24}");
            for baseline in baselines {
                line.push_str(&format!(" {:>14}", self.ratio(median, workload, baseline)));
            }
            println!("{line}");
        }
    }

    fn ratio(&self, median: f64, workload: &str, system: &str) -> String {
        let base = workload.split(" (").next().unwrap_or(workload);
        self.median(base, system).map_or_else(|| "—".to_owned(), |other| format!("{:.2}×", median / other))
    }
}

fn human(rate: f64) -> String {
    match rate {
        r if r >= 1e6 => format!("{:.2}M", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.1}"),
    }
}

/// One measurement a Python script printed as a JSON line.
#[derive(Deserialize)]
pub(crate) struct PythonSample {
    pub(crate) system: String,
    pub(crate) workload: String,
    pub(crate) ops: usize,
    pub(crate) seconds: f64,
}

impl PythonSample {
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// Runs `benches/<script>` with `args` under Python NanaSQLite 1.6.2 (`NANASQLITE_PYTHON`, or
/// the venv `bash .ci/python-venv` makes) and reads its samples; `None` (said on stderr) when
/// that Python is missing.
pub(crate) fn run_python(script: &str, args: &[String]) -> Option<Vec<PythonSample>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("NANASQLITE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/interop-venv/bin/python"));
    if !python.exists() {
        eprintln!("{script}: skipped (run `bash .ci/python-venv` first)");
        return None;
    }
    let output = std::process::Command::new(&python)
        .arg(root.join("benches").join(script))
        .args(args)
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("python prints UTF-8");
    Some(stdout.lines().map(|line| serde_json::from_str(line).expect("a sample per line")).collect())
}
