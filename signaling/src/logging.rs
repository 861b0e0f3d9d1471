//! Logging with tracing to stdout (what `docker logs` shows).

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;

use crate::config::LogLevel;

/// Installs the global subscriber at `level`.
pub fn init(level: LogLevel) {
    let filter = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .init();
}
