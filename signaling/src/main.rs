//! `webrtc-phone`: one process that serves the phone pages, speaks SIP with browsers and the SIP
//! network, and relays their media.

use std::process::ExitCode;

use clap::Parser;
use signaling::app::Gateway;
use signaling::config::{Args, Config};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line that names the setting, as for every other configuration error.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("webrtc-phone: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    signaling::logging::init(config.effective_log_level());
    if config.mode == signaling::config::Mode::Media {
        let node = match signaling::app::MediaNode::bind(config) {
            Ok(n) => n,
            Err(e) => return config_error(&e),
        };
        return match node.run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("webrtc-phone: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let gateway = match Gateway::bind(config) {
        Ok(g) => g,
        Err(e) => return config_error(&e),
    };
    match gateway.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webrtc-phone: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: &signaling::config::ConfigError) -> ExitCode {
    eprintln!("webrtc-phone: {e}");
    ExitCode::from(2)
}
