//! The benchmark's pictures: small line plots written as SVG text by hand. plotters with its
//! default features off and only `svg_backend` + `line_series` was measured as the alternative
//! (5 crates, 4.7 s wall / 3.5 s CPU for a clean release build on 2 shared cores): cheap, but
//! these plots need only axes, ticks, polylines and a legend, which this module does in a few
//! hundred lines with no dependency and no change to the workspace's lock file. Each plot names
//! the run's date and machine, and draws the ceiling (dashed) in the same axes as the figure it
//! bounds.

use std::fmt::Write;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Ceilings and bars are dashed.
    pub dashed: bool,
}

pub struct Plot {
    pub title: String,
    /// Shown under the title: the run's date and machine.
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x (the sizes go by factors of ten).
    pub log_x: bool,
    pub series: Vec<Series>,
}

const W: f64 = 900.0;
const H: f64 = 440.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 56.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About five round tick values from 0 to at least `max`.
fn linear_ticks(max: f64) -> Vec<f64> {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|k| k as f64 * step).collect()
}

/// A number as a short label: 1.2k, 35, 1M, 0.5.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.fract().abs() < 1e-9 || x.abs() >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    };
    format!("{s}{unit}")
}

impl Plot {
    pub fn to_svg(&self) -> String {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0))
            .collect();
        let fx = |x: f64| if self.log_x { x.log10() } else { x };
        let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| {
            (a.min(fx(*x)), b.max(fx(*x)))
        });
        if pts.is_empty() {
            (x0, x1) = (0.0, 1.0);
        }
        if (x1 - x0).abs() < 1e-9 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        let pad = (x1 - x0) * 0.04;
        let (x0, x1) = (x0 - pad, x1 + pad);
        let y_max = pts.iter().map(|p| p.1).fold(0.0, f64::max) * 1.08;
        let yt = linear_ticks(y_max);
        let y1 = *yt.last().unwrap_or(&1.0);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let sx = |x: f64| LEFT + (fx(x) - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + ph - y / y1 * ph;

        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            s,
            r##"<rect width="{W}" height="{H}" fill="#ffffff"/><text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text><text x="{LEFT}" y="44" fill="#555555">{}</text>"##,
            esc(&self.title),
            esc(&self.subtitle)
        );
        // Horizontal grid and y ticks.
        for &t in &yt {
            let y = sy(t);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                short(t)
            );
        }
        // x ticks at the measured x values (they are few and are what the reader wants).
        let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for x in xs {
            let px = sx(x);
            let _ = write!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 18.0,
                short(x)
            );
        }
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333333"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
            LEFT + pw / 2.0,
            H - 14.0,
            esc(&format!(
                "{}{}",
                self.x_label,
                if self.log_x { " (log scale)" } else { "" }
            )),
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        for (k, series) in self.series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let dash = if series.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let line: Vec<String> = series
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0))
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            if !line.is_empty() {
                let _ = write!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                    line.join(" ")
                );
                for p in &line {
                    let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    let _ = write!(s, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>"#);
                }
            }
            let ly = TOP + 10.0 + k as f64 * 20.0;
            let lx = LEFT + pw + 14.0;
            let _ = write!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 24.0,
                lx + 30.0,
                ly + 4.0,
                esc(&series.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(linear_ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = linear_ticks(27_551.0);
        assert_eq!(t[1], 10_000.0);
        assert!(*t.last().unwrap() >= 27_551.0);
        assert_eq!(short(25_000.0), "25k");
        assert_eq!(short(1_000_000.0), "1M");
        assert_eq!(short(2.5), "2.5");
    }

    #[test]
    fn a_plot_has_its_series_its_ceiling_dashed_and_its_machine() {
        let p = Plot {
            title: "Initial sync <rows/s>".into(),
            subtitle: "2026-12-01, 2 CPUs".into(),
            x_label: "documents".into(),
            y_label: "rows/s".into(),
            log_x: true,
            series: vec![
                Series {
                    name: "source-server".into(),
                    points: vec![(1e4, 20_000.0), (1e5, 25_000.0), (1e6, 26_000.0)],
                    dashed: false,
                },
                Series {
                    name: "ceiling".into(),
                    points: vec![(1e4, 22_000.0), (1e6, 28_000.0)],
                    dashed: true,
                },
            ],
        }
        .to_svg();
        assert!(p.starts_with("<svg"), "{p}");
        assert!(p.contains("Initial sync &lt;rows/s&gt;"));
        assert!(p.contains("2026-12-01, 2 CPUs"));
        assert_eq!(p.matches("<polyline").count(), 2);
        assert_eq!(p.matches("stroke-dasharray").count(), 2, "line and legend");
        assert_eq!(p.matches("<circle").count(), 5);
        assert!(p.contains(">1M</text>") && p.contains(">10k</text>"));
        assert!(p.trim_end().ends_with("</svg>"));
    }
}
