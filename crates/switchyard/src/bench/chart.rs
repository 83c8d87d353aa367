//! `chart.svg`: one row per lane, four panels side by side (decode speed, time to first
//! token, total latency, quality), so which lane is fast and which is good reads at a glance.
//! Hand-written SVG: no dependency, opens in any browser and renders on GitHub.

use super::report::{LaneResult, Report, fmt_ms, fmt_tps};
use std::fmt::Write;

const WIDTH: f64 = 1100.0;
const LABEL_W: f64 = 200.0;
const GAP: f64 = 28.0;
const ROW_H: f64 = 46.0;
const TOP: f64 = 118.0;
const BAR_H: f64 = 18.0;
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
const INK: &str = "#1f2328";
const MUTED: &str = "#656d76";
const GRID: &str = "#e4e8ec";
const FAIL: &str = "#cf222e";

/// The colour of a lane's kind: local, free cloud, premium.
fn colour(l: &LaneResult) -> &'static str {
    if l.premium {
        "#8250df"
    } else if l.local {
        "#1a7f37"
    } else {
        "#0969da"
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Ms,
    Tps,
    Score,
}

struct Panel {
    title: &'static str,
    hint: &'static str,
    unit: Unit,
    /// (value, p90) per lane.
    values: Vec<(Option<f64>, Option<f64>)>,
    /// Higher is better (else lower).
    higher_better: bool,
}

pub fn svg(r: &Report) -> String {
    let many = r.runs > 1;
    let lanes = &r.lanes;
    let panels = [
        Panel {
            title: "Decode speed",
            hint: "tokens/s · higher is better",
            unit: Unit::Tps,
            values: lanes.iter().map(|l| (l.summary.decode_tps_p50, None)).collect(),
            higher_better: true,
        },
        Panel {
            title: "Time to first token",
            hint: "lower is better",
            unit: Unit::Ms,
            values: lanes
                .iter()
                .map(|l| (l.summary.ttft_p50_ms, l.summary.ttft_p90_ms.filter(|_| many)))
                .collect(),
            higher_better: false,
        },
        Panel {
            title: "Total latency",
            hint: "whole answer · lower is better",
            unit: Unit::Ms,
            values: lanes
                .iter()
                .map(|l| (l.summary.total_p50_ms, l.summary.total_p90_ms.filter(|_| many)))
                .collect(),
            higher_better: false,
        },
        Panel {
            title: "Quality",
            hint: "0–10 · higher is better",
            unit: Unit::Score,
            values: lanes.iter().map(|l| (l.summary.quality, None)).collect(),
            higher_better: true,
        },
    ];
    let panel_w = (WIDTH - LABEL_W - 24.0 - GAP * (panels.len() - 1) as f64) / panels.len() as f64;
    let rows_h = ROW_H * lanes.len().max(1) as f64;
    let height = TOP + rows_h + 78.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="13" fill="{INK}">"#
    );
    s.push('\n');
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);

    // Title, what was run, legend.
    let _ = writeln!(
        s,
        r#"<text x="24" y="36" font-size="21" font-weight="600">Switchyard bench</text>"#
    );
    let quality_by = match &r.judge {
        Some(j) => format!("quality judged by {j}"),
        None => "quality by reference checks".to_owned(),
    };
    let _ = writeln!(
        s,
        r#"<text x="24" y="60" fill="{MUTED}">{} · {} prompt{} ({}) × {} run{} per lane · {}</text>"#,
        esc(&r.started),
        r.prompts.len(),
        plural(r.prompts.len()),
        esc(&r.suite),
        r.runs,
        plural(r.runs as usize),
        esc(&quality_by),
    );
    let mut lx = WIDTH - 24.0;
    for (name, col, present) in [
        ("premium", "#8250df", lanes.iter().any(|l| l.premium)),
        ("cloud", "#0969da", lanes.iter().any(|l| !l.local && !l.premium)),
        ("local", "#1a7f37", lanes.iter().any(|l| l.local && !l.premium)),
    ] {
        if !present {
            continue;
        }
        lx -= name.len() as f64 * 7.5 + 30.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="26" width="12" height="12" rx="3" fill="{col}"/><text x="{}" y="37" fill="{MUTED}">{name}</text>"#,
            lx + 17.0
        );
    }

    // Zebra rows and lane labels.
    for (i, l) in lanes.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                r##"<rect x="12" y="{y}" width="{}" height="{ROW_H}" rx="6" fill="#f6f8fa"/>"##,
                WIDTH - 24.0
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="24" y="{}" width="4" height="{}" rx="2" fill="{}"/>"#,
            y + 9.0,
            ROW_H - 18.0,
            colour(l)
        );
        let _ = writeln!(
            s,
            r#"<text x="36" y="{}" font-weight="600">{}</text>"#,
            y + 20.0,
            esc(&fit(&l.lane, 22))
        );
        let sub = format!("{} / {}", l.provider, l.model);
        let _ = writeln!(
            s,
            r#"<text x="36" y="{}" font-size="11" fill="{MUTED}">{}</text>"#,
            y + 36.0,
            esc(&fit(&sub, 30))
        );
        if l.summary.failures > 0 {
            let label = format!("{}/{} failed", l.summary.failures, l.summary.requests);
            let w = label.len() as f64 * 6.2 + 12.0;
            let x = LABEL_W - w + 4.0;
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{}" width="{w}" height="17" rx="8.5" fill="#ffebe9" stroke="{FAIL}" stroke-width="0.8"/><text x="{}" y="{}" font-size="11" fill="{FAIL}" text-anchor="middle">{label}</text>"##,
                y + 7.0,
                x + w / 2.0,
                y + 19.5
            );
        }
    }

    for (k, p) in panels.iter().enumerate() {
        let x0 = LABEL_W + 24.0 + k as f64 * (panel_w + GAP);
        draw_panel(&mut s, p, lanes, r.judge.is_some(), x0, panel_w, rows_h);
    }

    let mut foot = String::from(
        "TTFT: request sent → first generated text. Decode: tokens after the first ÷ time after the first. Quality: mean over prompts, a failed request scores 0.",
    );
    if many {
        foot.push_str(" Bars: median; whiskers: p90.");
    }
    let _ = writeln!(
        s,
        r#"<text x="24" y="{}" font-size="11" fill="{MUTED}">{}</text>"#,
        height - 18.0,
        esc(&foot)
    );
    s.push_str("</svg>\n");
    s
}

fn draw_panel(s: &mut String, p: &Panel, lanes: &[LaneResult], judged: bool, x0: f64, w: f64, rows_h: f64) {
    let _ = writeln!(
        s,
        r#"<text x="{x0}" y="92" font-size="14" font-weight="600">{}</text><text x="{x0}" y="108" font-size="11" fill="{MUTED}">{}</text>"#,
        p.title, p.hint
    );
    let max_v = p
        .values
        .iter()
        .flat_map(|(v, p90)| [*v, *p90])
        .flatten()
        .fold(0.0_f64, f64::max);
    let top = match p.unit {
        Unit::Score => 10.0,
        _ => nice_ceiling(max_v),
    };
    let ticks = ticks(top, p.unit);
    // Leave room right of the longest bar for its label.
    let plot_w = w - 56.0;
    let sx = |v: f64| x0 + (v / top).clamp(0.0, 1.0) * plot_w;
    let y_top = TOP;
    let y_bot = y_top + rows_h;
    for t in &ticks {
        let x = sx(*t);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{y_top}" x2="{x:.1}" y2="{y_bot}" stroke="{GRID}" stroke-width="1"/><text x="{x:.1}" y="{}" font-size="10.5" fill="{MUTED}" text-anchor="middle">{}</text>"#,
            y_bot + 16.0,
            axis_label(*t, p.unit)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{x0}" y1="{y_top}" x2="{x0}" y2="{y_bot}" stroke="#8c959f" stroke-width="1"/>"##
    );
    let best = p
        .values
        .iter()
        .filter_map(|(v, _)| *v)
        .reduce(|a, b| if (b > a) == p.higher_better { b } else { a });
    for (i, (l, (v, p90))) in lanes.iter().zip(&p.values).enumerate() {
        let yc = y_top + ROW_H * i as f64 + ROW_H / 2.0;
        let col = colour(l);
        let Some(v) = *v else {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" font-size="11.5" font-style="italic" fill="{MUTED}">{}</text>"#,
                x0 + 8.0,
                yc + 4.0,
                match p.unit {
                    _ if l.summary.failures == l.summary.requests => "no answer",
                    Unit::Score if judged => "no readable verdict",
                    Unit::Score => "no checks to score by",
                    _ => "not reported",
                }
            );
            continue;
        };
        let label = match p.unit {
            Unit::Ms => fmt_ms(Some(v)),
            Unit::Tps => fmt_tps(Some(v)),
            Unit::Score => format!("{v:.1}"),
        };
        let weight = if lanes.len() > 1 && best == Some(v) {
            "700"
        } else {
            "400"
        };
        let mut label_x = sx(v) + 8.0;
        match p.unit {
            Unit::Score => {
                // A lollipop on a 0–10 track: quality is a position on a scale, not an amount.
                let _ = writeln!(
                    s,
                    r##"<line x1="{x0}" y1="{yc}" x2="{:.1}" y2="{yc}" stroke="{GRID}" stroke-width="4" stroke-linecap="round"/><line x1="{x0}" y1="{yc}" x2="{:.1}" y2="{yc}" stroke="{col}" stroke-width="4" stroke-linecap="round" opacity="0.45"/><circle cx="{:.1}" cy="{yc}" r="7.5" fill="{col}" stroke="#ffffff" stroke-width="2"/>"##,
                    sx(10.0),
                    sx(v),
                    sx(v)
                );
                label_x = sx(v) + 13.0;
                if label_x > x0 + plot_w + 20.0 {
                    label_x = x0 + plot_w + 20.0;
                }
            }
            _ => {
                let bw = (sx(v) - x0).max(2.0);
                let _ = writeln!(
                    s,
                    r#"<rect x="{x0}" y="{:.1}" width="{bw:.1}" height="{BAR_H}" rx="3" fill="{col}"/>"#,
                    yc - BAR_H / 2.0
                );
                if let Some(p90) = p90.filter(|p90| *p90 > v) {
                    let (a, b) = (sx(v), sx(p90));
                    let _ = writeln!(
                        s,
                        r#"<line x1="{a:.1}" y1="{yc}" x2="{b:.1}" y2="{yc}" stroke="{INK}" stroke-width="1.2"/><line x1="{b:.1}" y1="{:.1}" x2="{b:.1}" y2="{:.1}" stroke="{INK}" stroke-width="1.2"/>"#,
                        yc - 5.0,
                        yc + 5.0
                    );
                    label_x = b + 8.0;
                }
            }
        }
        let _ = writeln!(
            s,
            r#"<text x="{label_x:.1}" y="{:.1}" font-size="12" font-weight="{weight}">{}</text>"#,
            yc + 4.0,
            esc(&label)
        );
    }
}

/// The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above `v` (1 for nothing to show).
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|c| *c >= v * 0.999_999)
        .unwrap_or(10.0 * mag)
}

/// Ticks at round steps: 4 or 5 intervals for a ceiling from `nice_ceiling`.
fn ticks(top: f64, unit: Unit) -> Vec<f64> {
    let lead = top / 10f64.powf(top.log10().floor());
    let n = match unit {
        Unit::Score => 2,
        _ if (lead - 2.0).abs() < 1e-9 => 4,
        _ => 5,
    };
    (0..=n).map(|i| top * i as f64 / n as f64).collect()
}

fn axis_label(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms if v == 0.0 => "0".into(),
        Unit::Ms if v < 1000.0 => format!("{v:.0} ms"),
        Unit::Ms => {
            let s = v / 1000.0;
            if (s - s.round()).abs() < 1e-9 {
                format!("{s:.0} s")
            } else {
                format!("{s:.1} s")
            }
        }
        Unit::Tps | Unit::Score => {
            if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn fit(s: &str, max: usize) -> String {
    super::report::truncate(s, max)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Summary;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(38.2), 50.0);
        assert_eq!(nice_ceiling(200.0), 200.0);
        assert_eq!(nice_ceiling(2100.0), 2500.0);
        assert_eq!(ticks(2500.0, Unit::Ms), [0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0]);
        assert_eq!(ticks(5.0, Unit::Tps), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(ticks(200.0, Unit::Tps), [0.0, 50.0, 100.0, 150.0, 200.0]);
        assert_eq!(ticks(10.0, Unit::Score), [0.0, 5.0, 10.0]);
        assert_eq!(axis_label(1500.0, Unit::Ms), "1.5 s");
        assert_eq!(axis_label(2000.0, Unit::Ms), "2 s");
    }

    fn lane(name: &str, local: bool, premium: bool, s: Summary) -> LaneResult {
        LaneResult {
            lane: name.into(),
            provider: "p".into(),
            model: "m".into(),
            local,
            premium,
            summary: s,
            results: Vec::new(),
        }
    }

    fn sample(runs: u32) -> Report {
        let s = |tps: f64, ttft: f64, total: f64, q: f64, failures: usize| Summary {
            requests: 8,
            failures,
            ttft_p50_ms: Some(ttft),
            ttft_p90_ms: Some(ttft * 1.6),
            decode_tps_p50: Some(tps),
            total_p50_ms: Some(total),
            total_p90_ms: Some(total * 1.3),
            quality: Some(q),
            ..Default::default()
        };
        Report {
            started: "2026-11-28 08:00 UTC".into(),
            started_ms: 0,
            duration_s: 60.0,
            config: "switchyard.yaml".into(),
            suite: "built-in suite".into(),
            runs,
            judge: None,
            prompts: Vec::new(),
            lanes: vec![
                lane("gemma-local", true, false, s(38.2, 240.0, 5300.0, 7.4, 0)),
                lane("llama70-cb", false, false, s(1450.0, 410.0, 900.0, 8.9, 1)),
                lane("flash-lite", false, false, s(210.0, 650.0, 1800.0, 8.1, 0)),
                lane("claude", false, true, s(75.0, 1200.0, 4100.0, 9.6, 0)),
                lane(
                    "cf-llama",
                    false,
                    false,
                    Summary {
                        requests: 8,
                        failures: 8,
                        quality: Some(0.0),
                        ..Default::default()
                    },
                ),
            ],
            skipped: Vec::new(),
        }
    }

    #[test]
    fn a_chart_of_several_lanes() {
        let svg = svg(&sample(3));
        for l in ["gemma-local", "llama70-cb", "flash-lite", "claude", "cf-llama"] {
            assert!(svg.contains(&format!(">{l}<")), "{l}");
        }
        assert!(
            svg.contains(">local<") && svg.contains(">cloud<") && svg.contains(">premium<"),
            "legend"
        );
        assert!(svg.contains("8/8 failed") && svg.contains("1/8 failed") && svg.contains("no answer"));
        // The fastest decode and the best quality are bold.
        assert!(svg.contains(r#"font-weight="700">1450<"#) && svg.contains(r#"font-weight="700">9.6<"#));
        assert!(svg.contains("whiskers: p90"));
        assert!(!super::svg(&sample(1)).contains("whiskers"));
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
