//! Process logging through `log` + `env_logger`: `RUST_LOG` decides (default `info`), one line
//! per event on stderr (the journal under systemd). Nothing logged carries a secret: settings are
//! logged by key name only.

/// Sets up the logger once; later calls do nothing.
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .format_target(false)
        .try_init();
}
