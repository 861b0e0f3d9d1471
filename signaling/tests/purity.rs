//! The pure modules stay pure (STYLE.md, issue 15): nothing under signaling's `sip`, `sdp`,
//! `b2bua`, `media_node`, the `ng` crate, or the engine's `proto`, `api`, `ports` and the
//! reactor's table and counters names tokio, axum, hyper, sockets, name resolution, threads,
//! io_uring or crossbeam, or reads the clock, outside its test code. The IO lives in
//! signaling's `transport`, `app` and `config` (name resolution at start-up) and the engine's
//! reactor. `unsafe` appears only in the files that say why; no file of either crate is over 800
//! lines before its tests; no two sibling modules import each other. Reads the source, so a new
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
        "../engine/src/proto",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    for f in [
        "../engine/src/api.rs",
        "../engine/src/ports.rs",
        "../engine/src/reactor/table.rs",
        "../engine/src/reactor/stats.rs",
    ] {
        files.push(root.join(f));
    }
    assert!(files.len() > 40, "the pure modules were found: {files:?}");
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
fn a_session_takes_its_random_values_from_its_caller() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("../engine/src/proto/session"), &mut files);
    // Test code plays browsers and may draw its own credentials.
    files.retain(|f| !f.to_string_lossy().contains("tests"));
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in production_lines(&text) {
            for word in ["OpenSslEntropy", "::random(", "openssl::rand"] {
                assert!(
                    !line.contains(word),
                    "{}:{n}: a session reads a generator of its own ({word})",
                    f.display()
                );
            }
        }
    }
}

/// The only files with `unsafe` blocks, functions or impls, each of which says why.
const UNSAFE_FILES: &[&str] = &[
    // The engine: the reactor's two kernel-facing files, DTLS's OpenSSL calls, libsrtp.
    "engine/src/reactor/ring.rs",
    "engine/src/reactor/os.rs",
    "engine/src/proto/dtls/ffi.rs",
    "engine/src/proto/srtp.rs",
    // Signaling's IO edge: socket options, signals, process limits.
    "signaling/src/app.rs",
    "signaling/src/config/mod.rs",
    "signaling/src/metrics.rs",
    "signaling/src/transport/driver.rs",
    "signaling/src/transport/ng.rs",
    "signaling/src/transport/udp.rs",
];

#[test]
fn unsafe_code_lives_only_in_the_files_that_say_so() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&root.join("engine/src"), &mut files);
    rust_files(&root.join("signaling/src"), &mut files);
    let mut found = std::collections::BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (n, line) in production_lines(&text) {
            if ["unsafe {", "unsafe fn", "unsafe extern", "unsafe impl"]
                .iter()
                .any(|w| line.contains(w))
            {
                assert!(
                    UNSAFE_FILES.contains(&rel.as_str()),
                    "{rel}:{n}: unsafe outside the files that may have it: {}",
                    line.trim()
                );
                found.insert(rel.clone());
            }
        }
    }
    // The list stays honest: every file on it still needs it.
    let stale: Vec<_> = UNSAFE_FILES
        .iter()
        .filter(|f| !found.contains(**f))
        .collect();
    assert!(
        stale.is_empty(),
        "no unsafe left in {stale:?}: take them off the list"
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
        "src/transport/ws_policy.rs",
        "../ng/src/lib.rs",
        "../engine/src/api.rs",
        "../engine/src/ports.rs",
        "../engine/src/proto/client.rs",
        "../engine/src/proto/entropy.rs",
        "../engine/src/proto/ice.rs",
        "../engine/src/proto/stats.rs",
        "../engine/src/proto/stun.rs",
        "../engine/src/proto/wire.rs",
        "../engine/src/proto/session/mod.rs",
        "../engine/src/reactor/table.rs",
        "../engine/src/reactor/stats.rs",
        "../engine/src/reactor/sockets.rs",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]"),
            "{f} does not forbid unsafe code"
        );
    }
}

/// The module path of a source file under `src` (`b2bua/call/setup.rs` → `b2bua::call::setup`).
fn module_of(src: &Path, f: &Path) -> Vec<String> {
    let rel = f.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The modules a file's `use` lines name, as full paths from the crate root.
fn imports(module: &[String], text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (_, line) in production_lines(text) {
        let l = line.trim();
        let Some(rest) = l
            .strip_prefix("pub use ")
            .or_else(|| l.strip_prefix("use "))
            .or_else(|| l.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let path: Vec<&str> = rest
            .split(['{', ';', ' '])
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|s| !s.is_empty())
            .collect();
        // `super` of module `a::b` (`a/b.rs` or `a/b/mod.rs`) is `a`.
        let mut base: Vec<String> = module.to_vec();
        let mut segs = path.as_slice();
        match segs.first() {
            Some(&"crate") => {
                base.clear();
                segs = &segs[1..];
            }
            Some(&"super") => {
                while segs.first() == Some(&"super") {
                    base.pop();
                    segs = &segs[1..];
                }
            }
            Some(&"self") => segs = &segs[1..],
            _ => continue, // another crate
        }
        base.extend(segs.iter().map(|s| s.to_string()));
        out.push(base);
    }
    out
}

#[test]
fn no_import_cycle_between_sibling_modules() {
    for krate in ["signaling", "engine"] {
        no_import_cycle_in(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(krate)
                .join("src"),
        );
    }
}

fn no_import_cycle_in(src: &Path) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let known: std::collections::HashSet<Vec<String>> = modules.iter().cloned().collect();
    // Edges between siblings: a module's import of another module's item, both lifted to the
    // children of their deepest common ancestor (a child using its parent is no cycle).
    let mut edges: std::collections::BTreeSet<(Vec<String>, Vec<String>)> = Default::default();
    for (f, m) in files.iter().zip(&modules) {
        if f.file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("tests.rs")
        {
            continue; // test modules may reach anywhere
        }
        let text = std::fs::read_to_string(f).unwrap();
        for mut target in imports(m, &text) {
            while !target.is_empty() && !known.contains(&target) {
                target.pop();
            }
            let common = m.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == m.len() || common == target.len() {
                continue; // ancestor and descendant
            }
            let from = m[..=common].to_vec();
            let to = target[..=common].to_vec();
            edges.insert((from, to));
        }
    }
    assert!(
        edges.len() > 5,
        "{}: imports were found: {edges:?}",
        src.display()
    );
    let mut cycles = Vec::new();
    for (a, b) in &edges {
        // A cycle through this edge: a path from b back to a.
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![(b.clone(), vec![a.join("::"), b.join("::")])];
        while let Some((n, path)) = stack.pop() {
            if &n == a {
                cycles.push(path.join(" -> "));
                break;
            }
            if !seen.insert(n.clone()) {
                continue;
            }
            for (x, y) in &edges {
                if x == &n {
                    let mut p = path.clone();
                    p.push(y.join("::"));
                    stack.push((y.clone(), p));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_source_file_is_over_800_lines_before_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("../engine/src"), &mut files);
    assert!(files.len() > 60, "both crates' files were found");
    let mut long = Vec::new();
    for f in &files {
        // Whole-file test modules (`tests.rs`, `call_tests.rs`) are the test part.
        if f.file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("tests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let n = production_lines(&text).count();
        if n > 800 {
            long.push(format!("{}: {n} lines", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over 800 lines:\n{}",
        long.join("\n")
    );
}
