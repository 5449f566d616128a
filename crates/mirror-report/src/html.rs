//! The HTML report: one self-contained page, charts as inline SVG, no external resources.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{DiffOp, Estimate, PairSummary, Report, SideStats, SIMILARITY_BINS};

const PRIMARY_COLOR: &str = "#2563eb";
const SHADOW_COLOR: &str = "#ea580c";
const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
const LATENCY_BINS: usize = 32;

const STYLE: &str = r#"
:root { color-scheme: light; --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 20px 32px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 4px; font-size: 22px; }
h2 { margin: 0 0 12px; font-size: 18px; }
h3 { margin: 20px 0 8px; font-size: 15px; }
main { padding: 16px 32px 40px; }
.muted { color: var(--muted); }
section.edge { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 20px; margin-bottom: 24px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 16px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 130px; }
.card b { display: block; font-size: 18px; }
.card span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin-bottom: 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child { text-align: left; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { width: 100%; height: auto; display: block; }
svg text { font-size: 11px; fill: #374151; }
svg .axis { stroke: #9ca3af; stroke-width: 1; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .legend { cursor: pointer; }
svg .hidden { display: none; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #fef3c7; font-size: 12px; margin-left: 8px; }
details { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; margin-bottom: 6px; }
summary { cursor: pointer; }
pre.diff { white-space: pre-wrap; word-break: break-word; background: var(--bg); padding: 8px; border-radius: 4px; }
del { background: #fee2e2; color: #991b1b; }
ins { background: #dcfce7; color: #166534; text-decoration: none; }
"#;

const SCRIPT: &str = r#"
(function () {
  "use strict";
  var charts = document.querySelectorAll("svg.chart");
  document.querySelectorAll("[data-toggle]").forEach(function (legend) {
    legend.addEventListener("click", function () {
      var svg = legend.closest("svg");
      var series = legend.getAttribute("data-toggle");
      svg.querySelectorAll('[data-series="' + series + '"]').forEach(function (shape) {
        shape.classList.toggle("hidden");
      });
      legend.style.opacity = legend.style.opacity === "0.4" ? "1" : "0.4";
    });
  });
  document.documentElement.setAttribute("data-report-ready", String(charts.length));
})();
"#;

/// Escapes text for HTML content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[allow(clippy::cast_precision_loss)]
fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

fn ms(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0} ms")
    } else {
        format!("{value:.1} ms")
    }
}

fn usd(value: f64) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    if value.abs() >= 1.0 {
        format!("{sign}${:.2}", value.abs())
    } else {
        format!("{sign}${:.4}", value.abs())
    }
}

fn signed_usd(value: f64) -> String {
    if value < 0.0 {
        usd(value)
    } else {
        format!("+{}", usd(value))
    }
}

/// Renders the report as one self-contained HTML page.
pub fn render_html(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write_page(&mut out, report);
    out
}

fn write_page(out: &mut String, report: &Report) -> std::fmt::Result {
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    // Nothing outside the page may load, even by mistake.
    writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
    )?;
    writeln!(out, "<title>Mirror report</title>")?;
    writeln!(
        out,
        "<script>window.addEventListener(\"error\", function (e) {{ document.documentElement.setAttribute(\"data-script-error\", String(e.message)); }});</script>"
    )?;
    writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>")?;
    let t = &report.totals;
    writeln!(out, "<header><h1>Mirror report</h1>")?;
    writeln!(
        out,
        "<p class=\"muted\">{} records: {} primary, {} silent, {} other, {} cancelled (not compared); {} malformed lines; {} duplicates; pairing window {} records.</p>",
        t.records, t.primaries, t.shadows, t.other_calls, t.cancelled, t.malformed_lines, t.duplicates, report.window
    )?;
    if !t.unmatched_shadows.is_empty() {
        let list: Vec<String> = t
            .unmatched_shadows
            .iter()
            .map(|(group, n)| format!("{} {n}", esc(group)))
            .collect();
        writeln!(
            out,
            "<p class=\"muted\">Silent calls whose primary is not in the log: {}.</p>",
            list.join(", ")
        )?;
    }
    writeln!(out, "</header>\n<main>")?;
    if report.edges.is_empty() {
        writeln!(
            out,
            "<p>No primary call has a silent call in these records.</p>"
        )?;
    }
    for (i, edge) in report.edges.iter().enumerate() {
        write_edge(out, i, edge)?;
    }
    writeln!(out, "</main>\n<script>{SCRIPT}</script>\n</body>\n</html>")
}

fn card(out: &mut String, value: &str, label: &str) -> std::fmt::Result {
    writeln!(
        out,
        "<div class=\"card\"><b>{}</b><span>{}</span></div>",
        esc(value),
        esc(label)
    )
}

fn write_edge(out: &mut String, index: usize, edge: &PairSummary) -> std::fmt::Result {
    writeln!(out, "<section class=\"edge\" id=\"edge-{index}\">")?;
    write!(
        out,
        "<h2>{} &rarr; {}",
        esc(&edge.primary_group),
        esc(&edge.shadow_group)
    )?;
    write!(
        out,
        "<span class=\"badge call-type\">{}</span>",
        edge.call_type.label()
    )?;
    if edge.is_self_copy {
        write!(
            out,
            "<span class=\"badge\">noise baseline: same model</span>"
        )?;
    }
    writeln!(out, "</h2>\n<div class=\"cards\">")?;
    let a = &edge.agreement;
    card(out, &edge.pairs.to_string(), "pairs")?;
    card(out, &edge.missing.to_string(), "primaries without shadow")?;
    if let Some(e) = &edge.embeddings {
        let (mean, p5) = if e.compared > 0 {
            (
                format!("{:.4}", e.mean_cosine),
                format!("{:.4}", e.p5_cosine),
            )
        } else {
            ("–".to_owned(), "–".to_owned())
        };
        card(out, &mean, &format!("mean cosine ({} pairs)", e.compared))?;
        card(out, &p5, "p5 cosine")?;
    } else {
        card(out, &pct(a.normalized, a.comparable), "agree (normalised)")?;
        card(out, &format!("{:.3}", a.mean_similarity), "mean similarity")?;
    }
    card(
        out,
        &format!("{:+.1} ms", edge.latency_diff_ms.p50),
        "p50 latency diff (s-p)",
    )?;
    card(
        out,
        &signed_usd(edge.cost_per_1k_diff),
        "cost diff per 1k req",
    )?;
    if let Some(noise) = &edge.noise {
        card(
            out,
            &format!("{:+.1} pts", noise.excess_disagreement * 100.0),
            &format!("disagreement beyond noise ({})", noise.baseline_group),
        )?;
    }
    if let Some(judge) = &edge.judge {
        card(
            out,
            &format!(
                "{} / {} / {}",
                pct(judge.shadow_wins, judge.judged),
                pct(judge.ties, judge.judged),
                pct(judge.shadow_losses, judge.judged)
            ),
            &format!("judge {}: shadow win / tie / loss", judge.model),
        )?;
    }
    writeln!(out, "</div>")?;
    write_side_table(out, edge)?;
    if let Some(e) = &edge.embeddings {
        writeln!(
            out,
            "<table class=\"embeddings\"><tr><th>pairs compared</th><th>mean cosine</th><th>min</th><th>p5</th><th>p50</th><th>without vectors</th><th>dimension mismatch</th></tr>\
             <tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr></table>",
            e.compared, e.mean_cosine, e.min_cosine, e.p5_cosine, e.p50_cosine, e.without_vectors, e.dimension_mismatch
        )?;
    } else {
        write_agreement_table(out, edge)?;
    }
    write_intervals_table(out, edge)?;
    writeln!(out, "<div class=\"charts\">")?;
    latency_chart(out, edge)?;
    cost_chart(out, edge)?;
    agreement_chart(out, edge)?;
    errors_chart(out, edge)?;
    writeln!(out, "</div>")?;
    write_divergent(out, edge)?;
    writeln!(out, "</section>")
}

fn write_side_table(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    writeln!(
        out,
        "<table class=\"sides\"><tr><th>side</th><th>calls</th><th>errors</th><th>p50</th><th>p90</th><th>p99</th><th>TTFT p50</th><th>tokens in</th><th>tokens out</th><th>cost</th><th>per 1k req</th></tr>"
    )?;
    let row = |out: &mut String, name: &str, side: &SideStats| {
        writeln!(
            out,
            "<tr><td>{name}</td><td>{}</td><td>{} ({:.1}%)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            side.calls,
            side.failures,
            side.error_rate * 100.0,
            ms(side.latency_ms.p50),
            ms(side.latency_ms.p90),
            ms(side.latency_ms.p99),
            if side.ttft_ms.count > 0 { ms(side.ttft_ms.p50) } else { "–".to_owned() },
            side.prompt_tokens,
            side.completion_tokens,
            usd(side.cost),
            usd(side.cost_per_1k)
        )
    };
    row(out, "primary", &edge.primary)?;
    row(out, "shadow", &edge.shadow)?;
    let d = &edge.latency_diff_ms;
    writeln!(
        out,
        "<tr><td>shadow &minus; primary</td><td></td><td></td><td>{:+.1} ms</td><td>{:+.1} ms</td><td>{:+.1} ms</td><td>{}</td><td></td><td></td><td>{}</td><td>{}</td></tr></table>",
        d.p50,
        d.p90,
        d.p99,
        if edge.ttft_diff_ms.count > 0 { format!("{:+.1} ms", edge.ttft_diff_ms.p50) } else { "–".to_owned() },
        signed_usd(edge.shadow.cost - edge.primary.cost),
        signed_usd(edge.cost_per_1k_diff)
    )
}

fn write_intervals_table(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    let i = &edge.intervals;
    writeln!(
        out,
        "<table class=\"intervals\"><caption>{:.0}% confidence intervals, shadow minus primary (bootstrap, {} resamples, over {} of {} pairs)</caption>\
         <tr><th>measure</th><th>estimate</th><th>interval</th><th>pairs</th></tr>",
        i.confidence * 100.0,
        i.resamples,
        i.sampled_pairs,
        i.of_pairs
    )?;
    let row = |out: &mut String, label: &str, e: Option<&Estimate>, digits: usize| {
        match e {
        Some(e) => writeln!(
            out,
            "<tr><td>{label}</td><td>{:+.digits$}</td><td>[{:+.digits$}, {:+.digits$}]</td><td>{}</td></tr>",
            e.value, e.low, e.high, e.pairs
        ),
        None => writeln!(out, "<tr><td>{label}</td><td>–</td><td>–</td><td>0</td></tr>"),
    }
    };
    row(out, "latency p50 (ms)", i.latency_p50_diff_ms.as_ref(), 1)?;
    row(out, "latency p99 (ms)", i.latency_p99_diff_ms.as_ref(), 1)?;
    row(out, "latency p99 (%)", i.latency_p99_diff_pct.as_ref(), 1)?;
    row(
        out,
        "cost per 1k requests (USD)",
        i.cost_per_1k_diff.as_ref(),
        4,
    )?;
    row(
        out,
        "error rate (points)",
        i.error_rate_diff_points.as_ref(),
        2,
    )?;
    row(out, "agreement (%)", i.agreement_pct.as_ref(), 1)?;
    match i.latency_p_value {
        Some(p) => writeln!(
            out,
            "<tr><td>latency p-value (sign-flip permutation)</td><td>{p:.4}</td><td></td><td>{}</td></tr>",
            i.sampled_pairs
        )?,
        None => writeln!(out, "<tr><td>latency p-value</td><td>–</td><td></td><td>0</td></tr>")?,
    }
    writeln!(out, "</table>")
}

fn write_agreement_table(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    let a = &edge.agreement;
    writeln!(
        out,
        "<table class=\"agreement\"><tr><th>comparable pairs</th><th>exact</th><th>normalised</th><th>JSON equal</th><th>tool names</th><th>tool calls</th><th>mean similarity</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{} of {}</td><td>{} of {}</td><td>{:.3}</td></tr></table>",
        a.comparable,
        pct(a.exact, a.comparable),
        pct(a.normalized, a.comparable),
        pct(a.json_equal, a.json_pairs),
        a.json_pairs,
        pct(a.tool_names_equal, a.tool_pairs),
        a.tool_pairs,
        pct(a.tool_calls_equal, a.tool_pairs),
        a.tool_pairs,
        a.mean_similarity
    )?;
    if let Some(noise) = &edge.noise {
        writeln!(
            out,
            "<p>Noise floor from <b>{} &rarr; {}</b> ({} pairs, same model): {:.1}% disagreement, mean similarity {:.3}. This shadow disagrees {:.1}% of the time: <b>{:+.1} points</b> beyond noise.</p>",
            esc(&edge.primary_group),
            esc(&noise.baseline_group),
            noise.baseline_pairs,
            noise.baseline_disagreement_rate * 100.0,
            noise.baseline_mean_similarity,
            noise.disagreement_rate * 100.0,
            noise.excess_disagreement * 100.0
        )?;
    }
    Ok(())
}

fn svg_open(out: &mut String, kind: &str, title: &str) -> std::fmt::Result {
    writeln!(
        out,
        "<figure><figcaption>{}</figcaption><svg class=\"chart\" data-chart=\"{kind}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    )
}

fn svg_close(out: &mut String) -> std::fmt::Result {
    writeln!(out, "</svg></figure>")
}

fn legend(out: &mut String) -> std::fmt::Result {
    for (i, (name, color)) in [("primary", PRIMARY_COLOR), ("shadow", SHADOW_COLOR)]
        .into_iter()
        .enumerate()
    {
        #[allow(clippy::cast_precision_loss)]
        let x = WIDTH - RIGHT - 150.0 + 75.0 * i as f64;
        writeln!(
            out,
            "<g class=\"legend\" data-toggle=\"{name}\"><rect x=\"{x}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{color}\" opacity=\"0.7\"/><text x=\"{}\" y=\"18\">{name}</text></g>",
            x + 16.0
        )?;
    }
    Ok(())
}

fn axes(out: &mut String, y_max: f64, y_label: &dyn Fn(f64) -> String) -> std::fmt::Result {
    let bottom = HEIGHT - BOTTOM;
    for step in 0..=4 {
        let value = y_max * f64::from(step) / 4.0;
        let y = bottom - (bottom - TOP) * f64::from(step) / 4.0;
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&y_label(value))
        )?;
    }
    writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{bottom}\" y2=\"{bottom}\"/><line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{bottom}\"/>",
        WIDTH - RIGHT
    )
}

fn no_data(out: &mut String, text: &str) -> std::fmt::Result {
    writeln!(
        out,
        "<text class=\"no-data\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        WIDTH / 2.0,
        HEIGHT / 2.0,
        esc(text)
    )
}

/// Latency distributions of both sides, overlaid: share of calls per log-spaced latency bin.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn latency_chart(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    svg_open(
        out,
        "latency",
        "Latency distribution (share of calls, log scale)",
    )?;
    let values = edge
        .latency_buckets
        .iter()
        .flatten()
        .map(|(v, _)| v.max(0.001));
    let (min, max) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !min.is_finite() {
        no_data(out, "no calls")?;
        return svg_close(out);
    }
    let (lo, hi) = ((min * 0.9).ln(), (max * 1.1).ln());
    let bin_of = |v: f64| {
        (((v.max(0.001).ln() - lo) / (hi - lo) * LATENCY_BINS as f64) as usize)
            .min(LATENCY_BINS - 1)
    };
    let shares: Vec<Vec<f64>> = edge
        .latency_buckets
        .iter()
        .map(|buckets| {
            let total: u64 = buckets.iter().map(|(_, n)| n).sum();
            let mut bins = vec![0.0; LATENCY_BINS];
            for (value, count) in buckets {
                bins[bin_of(*value)] += *count as f64 / total.max(1) as f64;
            }
            bins
        })
        .collect();
    let y_max = shares
        .iter()
        .flatten()
        .fold(0.0_f64, |m, v| m.max(*v))
        .max(0.01);
    axes(out, y_max, &|v| format!("{:.0}%", v * 100.0))?;
    let bottom = HEIGHT - BOTTOM;
    let plot_width = WIDTH - LEFT - RIGHT;
    let x_of = |bin: f64| LEFT + plot_width * bin / LATENCY_BINS as f64;
    for (series, (bins, color)) in ["primary", "shadow"]
        .iter()
        .zip(shares.iter().zip([PRIMARY_COLOR, SHADOW_COLOR]))
    {
        let mut path = format!("M{LEFT:.1},{bottom:.1}");
        for (i, share) in bins.iter().enumerate() {
            let y = bottom - (bottom - TOP) * share / y_max;
            let _ = write!(
                path,
                " L{:.1},{y:.1} L{:.1},{y:.1}",
                x_of(i as f64),
                x_of(i as f64 + 1.0)
            );
        }
        let _ = write!(path, " L{:.1},{bottom:.1} Z", x_of(LATENCY_BINS as f64));
        writeln!(
            out,
            "<path class=\"series\" data-series=\"{series}\" d=\"{path}\" fill=\"{color}\" fill-opacity=\"0.35\" stroke=\"{color}\" stroke-width=\"1.5\"><title>{series}</title></path>"
        )?;
    }
    // p50 markers.
    for (series, side, color) in [
        ("primary", &edge.primary, PRIMARY_COLOR),
        ("shadow", &edge.shadow, SHADOW_COLOR),
    ] {
        if side.latency_ms.count == 0 {
            continue;
        }
        let v = side.latency_ms.p50.max(0.001).ln();
        let x = LEFT + plot_width * ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        writeln!(
            out,
            "<line data-series=\"{series}\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"{color}\" stroke-dasharray=\"4 3\"><title>{series} p50 {}</title></line>",
            esc(&ms(side.latency_ms.p50))
        )?;
    }
    for tick in 0..=4 {
        let x = LEFT + plot_width * f64::from(tick) / 4.0;
        let value = (lo + (hi - lo) * f64::from(tick) / 4.0).exp();
        let anchor = match tick {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            bottom + 16.0,
            esc(&ms(value))
        )?;
    }
    legend(out)?;
    svg_close(out)
}

fn bars(
    out: &mut String,
    labels: &[String],
    series: &[(&str, &str, Vec<f64>)],
    value_label: &dyn Fn(f64) -> String,
) -> std::fmt::Result {
    let y_max = series
        .iter()
        .flat_map(|(_, _, values)| values.iter().copied())
        .fold(0.0_f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    axes(out, y_max, value_label)?;
    let bottom = HEIGHT - BOTTOM;
    #[allow(clippy::cast_precision_loss)]
    let group_width = (WIDTH - LEFT - RIGHT) / labels.len().max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let bar_width = (group_width * 0.8 / series.len().max(1) as f64).min(60.0);
    for (g, label) in labels.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let center = LEFT + group_width * (g as f64 + 0.5);
        #[allow(clippy::cast_precision_loss)]
        let start = center - bar_width * series.len() as f64 / 2.0;
        for (s, (name, color, values)) in series.iter().enumerate() {
            let value = values.get(g).copied().unwrap_or(0.0);
            let height = (bottom - TOP) * value / y_max;
            #[allow(clippy::cast_precision_loss)]
            let x = start + bar_width * s as f64;
            writeln!(
                out,
                "<rect class=\"bar\" data-series=\"{name}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{color}\" opacity=\"0.8\"><title>{name} {}: {}</title></rect>",
                bottom - height,
                (bar_width - 2.0).max(1.0),
                esc(label),
                esc(&value_label(value))
            )?;
        }
        writeln!(
            out,
            "<text x=\"{center:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 16.0,
            esc(label)
        )?;
    }
    Ok(())
}

fn cost_chart(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    svg_open(out, "cost", "Cost per 1,000 requests (USD)")?;
    bars(
        out,
        &["cost per 1k requests".to_owned()],
        &[
            ("primary", PRIMARY_COLOR, vec![edge.primary.cost_per_1k]),
            ("shadow", SHADOW_COLOR, vec![edge.shadow.cost_per_1k]),
        ],
        &usd,
    )?;
    legend(out)?;
    svg_close(out)
}

#[allow(clippy::cast_precision_loss)]
fn agreement_chart(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    svg_open(out, "agreement", "Answer similarity (pairs per bin)")?;
    let histogram = &edge.agreement.similarity_histogram;
    if edge.agreement.comparable == 0 {
        no_data(out, "no pair where both calls succeeded")?;
        return svg_close(out);
    }
    let labels: Vec<String> = (0..SIMILARITY_BINS)
        .map(|i| {
            if i == SIMILARITY_BINS - 1 {
                "=1".to_owned()
            } else {
                format!(".{i}")
            }
        })
        .collect();
    bars(
        out,
        &labels,
        &[(
            "pairs",
            "#059669",
            histogram.iter().map(|n| *n as f64).collect(),
        )],
        &|v| format!("{v:.0}"),
    )?;
    svg_close(out)
}

#[allow(clippy::cast_precision_loss)]
fn errors_chart(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    svg_open(out, "errors", "Error rate by class")?;
    let classes: BTreeSet<&String> = edge
        .primary
        .errors_by_class
        .keys()
        .chain(edge.shadow.errors_by_class.keys())
        .collect();
    if classes.is_empty() {
        axes(out, 1.0, &|v| format!("{:.0}%", v * 100.0))?;
        no_data(out, "no errors on either side")?;
        legend(out)?;
        return svg_close(out);
    }
    let rate = |side: &SideStats, class: &String| {
        side.errors_by_class.get(class).copied().unwrap_or(0) as f64 / side.calls.max(1) as f64
    };
    let labels: Vec<String> = classes.iter().map(|c| (*c).clone()).collect();
    bars(
        out,
        &labels,
        &[
            (
                "primary",
                PRIMARY_COLOR,
                classes.iter().map(|c| rate(&edge.primary, c)).collect(),
            ),
            (
                "shadow",
                SHADOW_COLOR,
                classes.iter().map(|c| rate(&edge.shadow, c)).collect(),
            ),
        ],
        &|v| format!("{:.1}%", v * 100.0),
    )?;
    legend(out)?;
    svg_close(out)
}

fn write_divergent(out: &mut String, edge: &PairSummary) -> std::fmt::Result {
    if edge.divergent.is_empty() {
        return Ok(());
    }
    writeln!(out, "<h3>Most divergent pairs</h3>")?;
    for pair in &edge.divergent {
        writeln!(
            out,
            "<details class=\"divergent\"><summary>similarity {:.3} &middot; trace <code>{}</code></summary><pre class=\"diff\">",
            pair.similarity,
            esc(&pair.trace_id)
        )?;
        for op in &pair.diff {
            match op {
                DiffOp::Equal(text) => out.push_str(&esc(text)),
                DiffOp::Delete(text) => write!(out, "<del>{}</del>", esc(text))?,
                DiffOp::Insert(text) => write!(out, "<ins>{}</ins>", esc(text))?,
            }
        }
        writeln!(out, "</pre></details>")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn an_empty_report_is_still_a_page_with_no_external_resource() {
        let html = render_html(&Report::default());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("No primary call has a silent call"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
