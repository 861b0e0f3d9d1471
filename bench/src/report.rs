//! The self-contained HTML report: a summary table and inline SVG line charts (no scripts, no
//! external URLs).

use std::fmt::Write as _;

use crate::run::Report;

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// A line chart of `series` (name, values; `None` = gap) against `xs`.
fn chart(title: &str, unit: &str, xs: &[f64], series: &[(String, Vec<Option<f64>>)]) -> String {
    let (w, h, l, r, t, b) = (720.0, 240.0, 60.0, 140.0, 28.0, 32.0);
    let xmax = xs.iter().copied().fold(1.0, f64::max);
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let px = |x: f64| l + x / xmax * (w - l - r);
    let py = |y: f64| t + (1.0 - y / ymax) * (h - t - b);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">
<text x="{l}" y="16" font-size="13" font-weight="bold">{}</text>
<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        esc(title),
        w - l - r,
        h - t - b
    );
    for i in 0..=4 {
        let y = ymax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{l}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            w - r,
            l - 4.0,
            py(y) + 4.0,
            if ymax < 10.0 {
                format!("{y:.2}")
            } else {
                format!("{y:.0}")
            },
            py = py(y),
        );
    }
    for i in 0..=4 {
        let x = xmax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{x:.0} s</text>"#,
            px(x),
            h - b + 14.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
        (h - b + t) / 2.0,
        (h - b + t) / 2.0,
        esc(unit)
    );
    for (k, (name, vals)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let mut d = String::new();
        let mut pen = false;
        for (x, y) in xs.iter().zip(vals) {
            match y {
                Some(y) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen { "L" } else { "M" },
                        px(*x),
                        py(*y)
                    );
                    pen = true;
                }
                None => pen = false,
            }
        }
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/><rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            w - r + 8.0,
            t + 4.0 + 16.0 * k as f64,
            w - r + 22.0,
            t + 13.0 + 16.0 * k as f64,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The HTML page for `rep`.
pub fn html(rep: &Report) -> String {
    let s = &rep.summary;
    let c = &rep.config;
    let xs: Vec<f64> = rep.timeline.iter().map(|p| p.t).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>loadgen report</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:960px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>\
         <h1>loadgen report</h1><p>{} calls to <code>{}</code> via <code>wss://{}{}</code>, \
         concurrency {}, {:.1} calls/s, hold {:.0} s; run {:.1} s.</p>",
        c.calls,
        esc(&c.target),
        c.wss,
        esc(&c.ws_path),
        c.concurrency,
        c.rate,
        c.hold.as_secs_f64(),
        rep.duration_s
    );
    let _ = write!(
        out,
        "<h2>Summary</h2><table><tr><th>measure</th><th>value</th></tr>\
         <tr><td>calls / ok / failed</td><td>{} / {} / {}</td></tr>\
         <tr><td>peak calls with media</td><td>{}</td></tr>\
         <tr><td>RTP sent / echoed back / lost (round trip)</td><td>{} / {} / {} ({:.3} %)</td></tr>\
         <tr><td>largest jitter (RFC 3550, echoed stream)</td><td>{:.2} ms</td></tr></table>",
        s.calls,
        s.ok,
        s.failed,
        s.peak_active,
        s.sent,
        s.received,
        s.lost,
        s.loss_pct,
        s.jitter_max_ms
    );
    out.push_str("<h2>Latency (ms)</h2><table><tr><th></th><th>n</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    for (name, p) in [
        ("INVITE → 200", &s.invite_to_200_ms),
        ("INVITE → first echoed media", &s.invite_to_media_ms),
        ("RTP round trip through the echo", &s.rtt_ms),
    ] {
        let _ = write!(
            out,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.n,
            opt(p.p50),
            opt(p.p99),
            opt(p.p999),
            opt(p.max)
        );
    }
    out.push_str("</table>");
    out.push_str("<h2>Processes</h2><table><tr><th>group</th><th>idle CPU %</th><th>CPU % at load</th><th>CPU ms per call-second</th><th>RSS idle KiB</th><th>RSS peak KiB</th><th>RSS per call KiB</th></tr>");
    for p in &s.processes {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.name),
            p.idle_cpu_pct,
            p.load_cpu_pct,
            opt(p.cpu_ms_per_call_s),
            p.rss_idle_kib,
            p.rss_peak_kib,
            opt(p.rss_per_call_kib)
        );
    }
    out.push_str("</table>");
    if !s.failures.is_empty() {
        out.push_str("<h2>Failures</h2><table><tr><th>reason</th><th>calls</th></tr>");
        for (why, n) in &s.failures {
            let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", esc(why));
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Over time</h2>");
    out.push_str(&chart(
        "RTP round trip through the echo",
        "ms",
        &xs,
        &[
            (
                "p50".into(),
                rep.timeline.iter().map(|p| p.rtt_p50_ms).collect(),
            ),
            (
                "p99".into(),
                rep.timeline.iter().map(|p| p.rtt_p99_ms).collect(),
            ),
        ],
    ));
    let groups: Vec<String> = rep
        .timeline
        .first()
        .map(|p| p.cpu.iter().map(|c| c.0.clone()).collect())
        .unwrap_or_default();
    let cpu: Vec<(String, Vec<Option<f64>>)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            (
                g.clone(),
                rep.timeline
                    .iter()
                    .map(|p| p.cpu.get(i).map(|c| c.1))
                    .collect(),
            )
        })
        .collect();
    out.push_str(&chart("CPU (% of one core)", "%", &xs, &cpu));
    out.push_str(&chart(
        "Calls with media",
        "calls",
        &xs,
        &[(
            "active".into(),
            rep.timeline.iter().map(|p| Some(p.active as f64)).collect(),
        )],
    ));
    out.push_str(&chart(
        "RTP packets per second",
        "packets/s",
        &xs,
        &[
            (
                "sent".into(),
                rep.timeline.iter().map(|p| Some(p.sent as f64)).collect(),
            ),
            (
                "echoed back".into(),
                rep.timeline
                    .iter()
                    .map(|p| Some(p.received as f64))
                    .collect(),
            ),
        ],
    ));
    out.push_str(&chart(
        "Loss per second (sent − echoed in the same second; ~RTT skew at edges)",
        "packets",
        &xs,
        &[(
            "sent − echoed".into(),
            rep.timeline
                .iter()
                .map(|p| Some(p.sent.saturating_sub(p.received) as f64))
                .collect(),
        )],
    ));
    out.push_str("<p>Loss is measured on the round trip (browser → gateway → SIPp echo → gateway → browser): the echo far end keeps no counters of its own, so the two directions are not separated.</p></body></html>\n");
    out
}
