//! `cargo xtask bench [--quick] [--scenario NAME]`: reverseit against nginx and HAProxy (issue 8).

/// Runs the benchmark with the arguments after `bench`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let _ = args;
    Err("bench: not implemented yet".into())
}
