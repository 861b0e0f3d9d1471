//! The pure modules stay pure (STYLE.md, issue 15): nothing under `sip`, `sdp`, `b2bua`,
//! `media_node` or the `ng` crate names tokio, axum, hyper, sockets, name resolution, threads,
//! io_uring or crossbeam, or reads the clock, outside its test code. The IO lives in
//! `transport`, `app` and `config` (name resolution at start-up). Reads the source, so a new
//! import fails this test with the file and line.

use std::path::{Path, PathBuf};

/// What a pure module may not say, with why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "the async runtime is the IO edge's"),
    ("axum", "HTTP is transport's"),
    ("hyper", "HTTP is transport's"),
    ("UdpSocket", "sockets are transport's"),
    ("TcpListener", "sockets are transport's"),
    ("TcpStream", "sockets are transport's"),
    ("ToSocketAddrs", "name resolution is configuration's"),
    ("to_socket_addrs", "name resolution is configuration's"),
    ("io_uring", "the ring is the engine reactor's"),
    ("crossbeam", "queues are the engine handle's"),
    ("Instant::now", "time comes in as `now`"),
    (
        "SystemTime::now",
        "time comes in as `now` (or the wall clock as a number)",
    ),
    ("thread::spawn", "threads are the wiring's"),
    ("std::fs", "files are configuration's"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of `text` before its first `#[cfg(test)]`, without comments.
fn production_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

#[test]
fn pure_modules_import_no_io_and_read_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src/sip",
        "src/sdp",
        "src/b2bua",
        "src/media_node",
        "../ng/src",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "the pure modules were found: {files:?}");
    let mut found = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        // Whole-file test modules (`call_tests.rs`, `tests.rs`) may read the clock once.
        if name.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in production_lines(&text) {
            for (word, why) in FORBIDDEN {
                if line.contains(word) {
                    found.push(format!(
                        "{}:{n}: `{word}` ({why}): {}",
                        f.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "IO in pure modules:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_pure_modules_forbid_unsafe() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "src/sip/mod.rs",
        "src/sdp/mod.rs",
        "src/b2bua/mod.rs",
        "src/media_node/mod.rs",
        "../ng/src/lib.rs",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]"),
            "{f} does not forbid unsafe code"
        );
    }
}
