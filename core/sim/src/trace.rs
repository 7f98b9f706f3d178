//! The simulator's log: the core's and the simulator's `tracing` events in
//! the test output, when asked for.

/// Installs a tracing subscriber writing to the test output when `SIM_TRACE` is set.
pub fn init_tracing() {
    if std::env::var_os("SIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_test_writer()
            .without_time()
            .try_init();
    }
}
