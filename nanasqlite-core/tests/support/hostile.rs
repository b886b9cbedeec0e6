//! Long hostile SQL fragments, each `length` bytes or about: what the validator must reject
//! without its time growing faster than the input (shared by the tests and the benchmark).

/// Unterminated groups, quotes and calls, long blank runs and long chains of conditions.
pub(crate) fn hostile_inputs(length: usize) -> Vec<String> {
    vec![
        format!("A{}!", " ".repeat(length)),
        "(".repeat(length),
        format!("'{}", "a".repeat(length)),
        "a(".repeat(length / 2),
        format!("\"{}", "x".repeat(length)),
        "a = 1 AND ".repeat(length / 10),
    ]
}
