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
        "src/transport/ws_policy.rs",
        "../ng/src/lib.rs",
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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
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
    assert!(edges.len() > 10, "imports were found: {edges:?}");
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
