//! PNG line charts (plotters, bitmap backend). Text needs a TrueType font: DejaVu Sans from
//! Debian's `fonts-dejavu-core`, or any file named by `BSC_PLOT_FONT`.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn ensure_font() -> anyhow::Result<()> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = std::env::var("BSC_PLOT_FONT")
            .ok()
            .or_else(|| FONT_CANDIDATES.iter().find(|p| Path::new(p).exists()).map(|p| p.to_string()))
            .ok_or_else(|| {
                "no TrueType font for the plots: install Debian's fonts-dejavu-core or set BSC_PLOT_FONT".to_string()
            })?;
        let bytes = std::fs::read(&path).map_err(|e| format!("read font {path}: {e}"))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path} is not a usable TrueType font"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// One line: points (x, y) and optional (low, high) error bars per point.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub bars: Vec<(f64, f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            bars: Vec::new(),
        }
    }
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_y: bool,
    /// Horizontal reference line (e.g. the SLO or efficiency 1.0).
    pub reference: Option<(f64, &'a str)>,
    /// Shaded periods along x (from, to, label), e.g. the spike and the compile.
    pub spans: &'a [(f64, f64, &'a str)],
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

pub fn line_chart(path: &Path, chart: &Chart<'_>, series: &[Series]) -> anyhow::Result<()> {
    ensure_font()?;
    let all = || {
        series.iter().flat_map(|s| {
            s.points
                .iter()
                .copied()
                .chain(s.bars.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]))
        })
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all().filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if let Some((r, _)) = chart.reference {
        y0 = y0.min(r);
        y1 = y1.max(r);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let pad = (y1 - y0).abs().max(1e-3) * 0.08;
    let root = BitMapBackend::new(path, (1000, 560)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr, $ylo:expr, $yhi:expr) => {{
            let mut c = $chart;
            c.configure_mesh()
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .draw()
                .map_err(|e| err(&e))?;
            for (i, &(a, b, label)) in chart.spans.iter().enumerate() {
                let shade = [RGBColor(120, 120, 120), RGBColor(230, 160, 40)][i % 2];
                c.draw_series(std::iter::once(Rectangle::new(
                    [(a.max(x0), $ylo), (b.min(x1), $yhi)],
                    shade.mix(0.15).filled(),
                )))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 20, y + 5)], shade.mix(0.3).filled())
                });
            }
            if let Some((r, label)) = chart.reference {
                c.draw_series(LineSeries::new(
                    [(x0, r), (x1, r)],
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
            }
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(_, y)| y.is_finite() && (!chart.log_y || *y > 0.0))
                    .collect();
                c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| err(&e))?;
                c.draw_series(s.bars.iter().map(|&(x, lo, hi)| {
                    PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(2))
                }))
                .map_err(|e| err(&e))?;
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if chart.log_y {
        let lo = y0.max(0.1) * 0.8;
        let hi = (y1 * 1.25).max(lo * 10.0);
        draw!(
            builder
                .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
                .map_err(|e| err(&e))?,
            lo,
            hi
        );
    } else {
        let (lo, hi) = ((y0 - pad).min(0.0), y1 + pad);
        draw!(
            builder
                .build_cartesian_2d(x0..x1, lo..hi)
                .map_err(|e| err(&e))?,
            lo,
            hi
        );
    }
    root.present().map_err(|e| err(&e)).context("write PNG")?;
    Ok(())
}
