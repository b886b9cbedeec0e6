//! How long the SQL fragment validator takes to reject long hostile input, and how that time
//! grows with the input: each input at 10 KB and at 100 KB, and the ratio (10× for linear
//! time; a quadratic validator would show about 100×).
//!
//! `cargo bench -p nanasqlite-core --bench sql_validation` (BENCH_REPS repetitions, default 5;
//! the fastest is kept).

use std::hint::black_box;
use std::time::{Duration, Instant};

use nanasqlite_core::sql::{Clause, SqlPolicy};

#[path = "../tests/support/hostile.rs"]
mod hostile;

/// The fastest of `reps` checks of `input` in every clause, by `policy` (without a length
/// limit, a long chain of conditions is accepted: SQLite then refuses its trailing `AND`).
fn fastest(policy: &SqlPolicy, input: &str, reps: usize) -> Duration {
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            for clause in [Clause::Where, Clause::OrderBy, Clause::Column] {
                let _ = black_box(policy.check(black_box(input), clause));
            }
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let reps = std::env::var("BENCH_REPS").ok().and_then(|reps| reps.parse().ok()).unwrap_or(5);
    let (short, long) = (hostile::hostile_inputs(10_000), hostile::hostile_inputs(100_000));
    // The default policy refuses long fragments by their length first; without that limit the
    // whole input is lexed and parsed.
    for (label, policy) in
        [("default policy", SqlPolicy::default()), ("no length limit", SqlPolicy::default().max_clause_length(None))]
    {
        println!("SQL validation of hostile input, {label}, fastest of {reps}: 10 KB, 100 KB, ratio (10x is linear)");
        let mut worst = 0.0f64;
        for (short, long) in short.iter().zip(&long) {
            let (a, b) = (fastest(&policy, short, reps), fastest(&policy, long, reps));
            let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-9);
            worst = worst.max(ratio);
            let shown: String = long.chars().take(12).collect();
            let micros = |time: Duration| time.as_secs_f64() * 1e6;
            println!("{shown:?}…  {:>9.1} µs  {:>9.1} µs  {ratio:>5.1}x", micros(a), micros(b));
        }
        println!("{label}: largest growth for 10x the input: {worst:.1}x");
    }
}
