//! The image recipe (`Dockerfile`): the runtime stage itself gives the binary the right to bind
//! 443 and checks it, because file capabilities set in a build stage are lost on `COPY --from`
//! by several builders (moby/moby#38132, GoogleContainerTools/kaniko#2866). No Docker daemon is
//! needed: the recipe is read as text.

const DOCKERFILE: &str = include_str!("../../Dockerfile");
const BIN: &str = "/usr/local/bin/webrtc-phone";

/// The recipe's stages, each as its instruction lines (continuations joined).
fn stages() -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut line = String::new();
    for raw in DOCKERFILE.lines() {
        let t = raw.trim();
        if t.starts_with('#') || (t.is_empty() && line.is_empty()) {
            continue;
        }
        line.push_str(t.trim_end_matches('\\'));
        line.push(' ');
        if t.ends_with('\\') {
            continue;
        }
        let instr = std::mem::take(&mut line).trim().to_string();
        if instr.is_empty() {
            continue;
        }
        if instr.starts_with("FROM ") {
            out.push(Vec::new());
        }
        out.last_mut().expect("a FROM first").push(instr);
    }
    out
}

#[test]
fn the_runtime_stage_sets_and_checks_the_bind_capability_after_copying_the_binary() {
    let stages = stages();
    let last = stages.last().expect("stages");
    let copied = last
        .iter()
        .position(|i| i.starts_with("COPY --from=") && i.ends_with(BIN))
        .expect("the runtime stage copies the binary in");
    let run = last
        .iter()
        .position(|i| {
            i.starts_with("RUN ")
                && i.contains(&format!("setcap cap_net_bind_service=+ep {BIN}"))
                && i.contains(&format!("getcap {BIN} | grep -q 'cap_net_bind_service=ep'"))
        })
        .expect("a RUN in the runtime stage that sets the capability and fails without it");
    assert!(
        run > copied,
        "the capability is set after the COPY that would drop it"
    );
    let user = last
        .iter()
        .position(|i| i.starts_with("USER "))
        .expect("the image runs as a user");
    assert!(user > run, "setcap runs as root, before USER");
    assert!(
        !last[user].ends_with(" root"),
        "the process does not run as root"
    );
    for (n, s) in stages[..stages.len() - 1].iter().enumerate() {
        assert!(
            !s.iter().any(|i| i.contains("setcap")),
            "stage {n} sets a capability that COPY --from may drop"
        );
    }
    assert!(last
        .iter()
        .any(|i| i.starts_with("ENV ") && i.contains("HTTPS_PORT=443")));
}
