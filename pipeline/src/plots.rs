//! Figures of a run (plotters, bundled DejaVu Sans font): every figure is drawn twice from
//! one body, as a PNG for reports and READMEs and as an SVG next to it for slides and papers.
//! Dense layers (field pixels, thousands of scatter points) are rasterised at the figure's
//! resolution and embedded in the SVG as an image, the way plotting tools rasterise a
//! pcolormesh; axes, ticks, text and curves stay vector.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

fn init_font() {
    FONT.call_once(|| {
        // The font is compiled in, so a failure here is a build defect, not a user error.
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        )
        .map_err(|_| ())
        .expect("bundled font parses");
    });
}

/// A figure written under a temporary name (same extension, so the encoder is chosen the
/// same) and renamed into place once complete: a crash or a full disk never leaves a
/// truncated figure under the real name. The temporary file goes away if the figure is not
/// published.
struct Atomic<'a> {
    path: &'a Path,
    tmp: std::path::PathBuf,
}

impl<'a> Atomic<'a> {
    fn new(path: &'a Path) -> Self {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let ext = path.extension().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{stem}.tmp.{ext}"));
        Self { path, tmp }
    }
    fn tmp(&self) -> &Path {
        &self.tmp
    }
    fn publish(&self) -> Result<()> {
        std::fs::rename(&self.tmp, self.path)
            .map_err(|e| anyhow!("cannot write {}: {e}", self.path.display()))
    }
}

/// Draws `$body` (a block using the drawing area `$root`) into `$path` as a PNG and into
/// the same path with extension `svg`, both published atomically once both are complete.
macro_rules! figure {
    ($path:expr, $size:expr, |$root:ident| $body:block) => {{
        let path: &Path = $path;
        let svg_path = path.with_extension("svg");
        let (png, svg) = (Atomic::new(path), Atomic::new(&svg_path));
        {
            let $root = BitMapBackend::new(png.tmp(), $size).into_drawing_area();
            $body
            $root.present().map_err(err)?;
        }
        {
            let $root = SVGBackend::new(svg.tmp(), $size).into_drawing_area();
            $body
            $root.present().map_err(err)?;
        }
        svg_image_mime(svg.tmp())?;
        png.publish()?;
        svg.publish()
    }};
}

/// plotters-svg 0.3.7 writes embedded images as `data:png;base64,...`, which is not a MIME
/// type; strict renderers (rsvg, Inkscape, some browsers) then draw nothing. Name it
/// `image/png`.
fn svg_image_mime(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("cannot read back {}: {e}", path.display()))?;
    if text.contains("\"data:png;base64,") {
        std::fs::write(
            path,
            text.replace("\"data:png;base64,", "\"data:image/png;base64,"),
        )
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

impl Drop for Atomic<'_> {
    fn drop(&mut self) {
        // After publish the temporary name is gone and this does nothing.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// One curve: x values and, per x, (mean, low, high) of y over seeds.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// How the x axis of [`curves`] is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Sample counts (N_H = 4..32, N_L = 20..50): log scale, a labelled tick at every count
    /// the data has.
    Counts,
    /// Continuous positive values (seconds, budgets): log scale, a tick at every power of ten.
    Log,
}

/// The ticks of a log axis over [lo, hi]: every 1, 2 and 5 x 10^k inside, so every decade
/// the axis spans is labelled (plotters' own choice skips decades); on an axis that spans
/// less than a decade, finer mantissas (1..9, then steps of 0.2) until at least three ticks
/// fall inside.
fn log_keys(lo: f64, hi: f64) -> Vec<f64> {
    let fine: Vec<f64> = (5..50).map(|k| k as f64 * 0.2).collect();
    let mantissas: [&[f64]; 3] = [
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        &fine,
    ];
    let mut keys = Vec::new();
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return keys;
    }
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for set in mantissas {
        keys.clear();
        for k in k0..=k1 {
            for &m in set {
                // Rounded so that 0.2 * 10^-3 prints as 2e-4, not 1.9999999999999998e-4.
                let v: f64 = format!("{:.3e}", m * 10f64.powi(k)).parse().unwrap_or(0.0);
                if v >= lo && v <= hi {
                    keys.push(v);
                }
            }
        }
        if keys.len() >= 3 {
            break;
        }
    }
    keys
}

/// "mean, min-max over 5 seeds" for figure titles; "1 seed" when there is no spread to show.
pub fn over_seeds(n: usize) -> String {
    match n {
        1 => "1 seed".into(),
        n => format!("mean, min-max over {n} seeds"),
    }
}

/// Curves on log axes with error bars (spread over seeds), the legend beside the axes.
pub fn curves(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    xaxis: XAxis,
) -> Result<()> {
    init_font();
    let tx = f64::ln;
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, _, lo, hi) in series.iter().flat_map(|s| s.points.iter()) {
        if x > 0.0 {
            x0 = x0.min(tx(x));
            x1 = x1.max(tx(x));
        }
        if lo > 0.0 {
            y0 = y0.min(lo);
        }
        y1 = y1.max(hi);
    }
    if !(x0.is_finite() && y0.is_finite() && y1.is_finite()) {
        return Ok(());
    }
    // A margin of 8 % of the span (at least a factor 1.06) on either side.
    let pad = 0.08 * (x1 - x0).max(0.7);
    let (x0, x1) = ((x0 - pad).exp(), (x1 + pad).exp());
    let (y0, y1) = (y0 / 1.5, y1 * 1.5);
    figure!(path, (900, 600), |root| {
        draw_curves(
            &root,
            (title, xlabel, ylabel),
            series,
            xaxis,
            [x0, x1, y0, y1],
        )?;
    })
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (title, xlabel, ylabel): (&str, &str, &str),
    series: &[Series],
    xaxis: XAxis,
    [x0, x1, y0, y1]: [f64; 4],
) -> Result<()> {
    // x ticks: at the sample counts the data has (N = 4, 8, 16, 32 or N_L = 20, 30, 50), at
    // every power of ten for continuous values (costs, budgets).
    let mut xkeys: Vec<f64> = match xaxis {
        XAxis::Counts => series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(|&x| x > 0.0)
            .collect(),
        // 1, 2, 5 x 10^k over spans of up to three decades, powers of ten beyond.
        XAxis::Log if x1 / x0 <= 1e3 => log_keys(x0, x1),
        XAxis::Log => (x0.log10().ceil() as i32..=x1.log10().floor() as i32)
            .map(|k| 10f64.powi(k))
            .collect(),
    };
    xkeys.sort_by(f64::total_cmp);
    xkeys.dedup_by(|a, b| (*a - *b).abs() <= 1e-9 * b.abs());
    root.fill(&WHITE).map_err(err)?;
    let (top, rest) = root.split_vertically(40);
    top.titled(title, ("sans-serif", 20)).map_err(err)?;
    // The legend has a strip of its own right of the axes, so it never hides data.
    let longest = series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0);
    let legend_w = (48 + 9 * longest as u32).clamp(90, 320);
    let (plot, legend) = rest.split_horizontally(rest.dim_in_pixel().0 - legend_w);
    let mut chart = ChartBuilder::on(&plot)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(
            (x0..x1).log_scale().with_key_points(xkeys),
            (y0..y1).log_scale().with_key_points(log_keys(y0, y1)),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .label_style(("sans-serif", 15))
        .x_label_formatter(&|v| plain_number(*v))
        .y_label_formatter(&|v| plain_number(*v))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64, f64, f64)> =
            s.points.iter().filter(|p| p.0 > 0.0).copied().collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))
            .map_err(err)?;
        chart
            .draw_series(
                pts.iter()
                    .filter(|p| p.2 > 0.0)
                    .map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, c.stroke_width(1), 8)),
            )
            .map_err(err)?;
        let y = 30 + 26 * i as i32;
        legend
            .draw(&PathElement::new(vec![(4, y), (34, y)], c.stroke_width(2)))
            .map_err(err)?;
        legend
            .draw(&Circle::new((19, y), 4, c.filled()))
            .map_err(err)?;
        legend
            .draw(&Text::new(
                s.label.as_str(),
                (42, y - 8),
                ("sans-serif", 15).into_font(),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// A grid of 2-D fields of positive values (errors, RMSEs) on one shared logarithmic colour
/// scale, over at most three decades below the largest value.
/// `fields[(row, col)]` holds values row-major over (axis0, axis1); axis1 runs horizontally.
pub fn field_grid(
    path: &Path,
    title: &str,
    row_labels: &[String],
    col_labels: &[String],
    fields: &BTreeMap<(usize, usize), Vec<f64>>,
    // (name, coordinates) of the vertical and the horizontal axis.
    [(name0, values0), (name1, values1)]: [(&str, &[f64]); 2],
    bar_label: &str,
) -> Result<()> {
    let (axes, axis_names) = ((values0, values1), (name0, name1));
    let shape = (axes.0.len(), axes.1.len());
    // Cell edges half-way between grid points (extrapolated at the ends).
    let edges = |v: &[f64]| -> Vec<f64> {
        let n = v.len();
        if n < 2 {
            return vec![v[0] - 0.5, v[0] + 0.5];
        }
        let mut e = Vec::with_capacity(n + 1);
        e.push(v[0] - 0.5 * (v[1] - v[0]));
        for k in 1..n {
            e.push(0.5 * (v[k - 1] + v[k]));
        }
        e.push(v[n - 1] + 0.5 * (v[n - 1] - v[n - 2]));
        e
    };
    let (e0, e1) = (edges(axes.0), edges(axes.1));
    init_font();
    let finite = || {
        fields
            .values()
            .flat_map(|f| f.iter())
            .cloned()
            .filter(|v| v.is_finite())
    };
    let vmax = finite().fold(f64::NEG_INFINITY, f64::max);
    // Three decades below the largest value at most: errors near exact boundary values are
    // 1e-12, and a scale down to those would paint every interesting pixel yellow. (On a
    // linear scale everything but the Burgers front was one colour.)
    let vmin = finite()
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min)
        .max(vmax * 1e-3);
    if !(vmax > 0.0 && vmin.is_finite()) {
        return Ok(());
    }
    let vmax = if vmax > vmin {
        vmax
    } else {
        vmin * (1.0 + 1e-9)
    };
    // Where a value falls on the colour scale, 0 to 1 (zero and below: the bottom).
    let unit = |v: f64| -> f64 {
        if v > 0.0 {
            ((v / vmin).ln() / (vmax / vmin).ln()).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let (nr, nc) = (row_labels.len(), col_labels.len());
    let cell = 260u32;
    // Wide enough for the title too (a one- or two-column grid is narrower than it).
    let title_w = 40 + 11 * title.chars().count() as u32;
    let (w, h) = (
        (110 + cell * nc as u32 + 110).max(title_w),
        50 + cell * nr as u32,
    );
    figure!(path, (w, h), |root| {
        root.fill(&WHITE).map_err(err)?;
        let (top, rest) = root.split_vertically(50);
        top.titled(title, ("sans-serif", 22)).map_err(err)?;
        let (left, right) = rest.split_horizontally(110 + cell * nc as u32);
        let (right, _) = right.split_horizontally(110);
        let panels = left.split_evenly((nr, nc));
        for (r, rl) in row_labels.iter().enumerate() {
            for (c, cl) in col_labels.iter().enumerate() {
                let area = &panels[r * nc + c];
                let Some(f) = fields.get(&(r, c)) else {
                    continue;
                };
                let mut chart = ChartBuilder::on(area)
                    .caption(
                        if rl.is_empty() {
                            cl.clone()
                        } else {
                            format!("{rl}, {cl}")
                        },
                        ("sans-serif", 14),
                    )
                    .margin(4)
                    .x_label_area_size(32)
                    .y_label_area_size(if c == 0 { 34 } else { 6 })
                    .build_cartesian_2d(e1[0]..e1[shape.1], e0[0]..e0[shape.0])
                    .map_err(err)?;
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_desc(axis_names.1)
                    .y_desc(if c == 0 { axis_names.0 } else { "" })
                    .x_labels(5)
                    // Panels share the axes: only the first column labels t (labels of the others
                    // would sit inside their left neighbours).
                    .y_labels(if c == 0 { 5 } else { 0 })
                    .x_label_formatter(&|v| tick(*v, e1[shape.1] - e1[0]))
                    .y_label_formatter(&|v| tick(*v, e0[shape.0] - e0[0]))
                    .label_style(("sans-serif", 10))
                    .draw()
                    .map_err(err)?;
                // One pixel per screen pixel of the panel, coloured by the grid cell under its
                // centre: the same picture as a rectangle per cell, but one image in the SVG.
                let (pw, ph) = chart.plotting_area().dim_in_pixel();
                let cell_of = |edges: &[f64], v: f64| {
                    edges.partition_point(|&e| e <= v).clamp(1, edges.len() - 1) - 1
                };
                let mut pixels = Vec::with_capacity(3 * (pw * ph) as usize);
                for py in 0..ph {
                    let y = e0[shape.0] - (py as f64 + 0.5) / ph as f64 * (e0[shape.0] - e0[0]);
                    let i = cell_of(&e0, y);
                    for px in 0..pw {
                        let x = e1[0] + (px as f64 + 0.5) / pw as f64 * (e1[shape.1] - e1[0]);
                        let j = cell_of(&e1, x);
                        let RGBColor(r, g, b) = ViridisRGB::get_color(unit(f[i * shape.1 + j]));
                        pixels.extend_from_slice(&[r, g, b]);
                    }
                }
                let image =
                    BitMapElement::with_owned_buffer((e1[0], e0[shape.0]), (pw, ph), pixels)
                        .ok_or_else(|| anyhow!("field image of {pw} x {ph} pixels is malformed"))?;
                chart.plotting_area().draw(&image).map_err(err)?;
            }
        }
        // Colour bar: 200 steps drawn in unit coordinates, labelled on a secondary log axis in
        // the field's own units.
        let bar = ChartBuilder::on(&right)
            .margin_top(20)
            .margin_bottom(30)
            .margin_right(30)
            .y_label_area_size(0)
            .right_y_label_area_size(75)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(err)?;
        let steps = 200;
        let strip = (0..steps).map(|k| {
            let (a, b) = (k as f64 / steps as f64, (k + 1) as f64 / steps as f64);
            Rectangle::new([(0.0, a), (1.0, b)], ViridisRGB::get_color(a).filled())
        });
        let mut bar = bar.set_secondary_coord(
            0.0..1.0,
            (vmin..vmax)
                .log_scale()
                .with_key_points(log_keys(vmin, vmax)),
        );
        bar.configure_secondary_axes()
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 14))
            .y_desc(bar_label)
            .y_label_formatter(&|v| plain_number(*v))
            .draw()
            .map_err(err)?;
        bar.draw_series(strip).map_err(err)?;
    })
}

/// Predicted-vs-true scatter, one panel per model, with R^2 in each caption; at most four
/// panels a row, so seven models still read on a slide.
pub fn scatter(
    path: &Path,
    title: &str,
    panels: &[(String, f64, Vec<f64>, Vec<f64>)],
) -> Result<()> {
    scatter_grid(path, title, panels, panels.len().min(4), false)
}

/// Predicted-vs-true panels in rows of `cols`; with `row_colours`, one colour per row (a row
/// is one model at several N_H), otherwise one per panel.
pub fn scatter_grid(
    path: &Path,
    title: &str,
    panels: &[(String, f64, Vec<f64>, Vec<f64>)],
    cols: usize,
    row_colours: bool,
) -> Result<()> {
    init_font();
    if panels.is_empty() || cols == 0 {
        return Ok(());
    }
    let rows = panels.len().div_ceil(cols);
    // One scale for every panel, so they compare at a glance.
    let all = || {
        panels
            .iter()
            .flat_map(|p| p.2.iter().chain(p.3.iter()))
            .cloned()
            .filter(|v| v.is_finite())
    };
    let lo = all().fold(f64::INFINITY, f64::min);
    let hi = all().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return Ok(());
    }
    let pad = 0.05 * (hi - lo).max(1e-12);
    let range = lo - pad..hi + pad;
    figure!(path, (420 * cols as u32, 40 + 430 * rows as u32), |root| {
        root.fill(&WHITE).map_err(err)?;
        let (top, rest) = root.split_vertically(40);
        top.titled(title, ("sans-serif", 20)).map_err(err)?;
        let areas = rest.split_evenly((rows, cols));
        for (k, (label, r2, truth, pred)) in panels.iter().enumerate() {
            let mut chart = ChartBuilder::on(&areas[k])
                .caption(format!("{label}: R\u{b2} = {r2:.4}"), ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(range.clone(), range.clone())
                .map_err(err)?;
            // At most ~4000 points, evenly strided so the picture is deterministic, plus the 200
            // largest errors: the outliers are what the eye looks for, and they set the scale.
            let stride = (truth.len() / 4000).max(1);
            let mut worst: Vec<usize> = (0..truth.len().min(pred.len())).collect();
            worst.sort_by(|&a, &b| {
                (pred[b] - truth[b])
                    .abs()
                    .total_cmp(&(pred[a] - truth[a]).abs())
            });
            worst.truncate(200);
            worst.retain(|i| i % stride != 0);
            let shown = (0..truth.len().min(pred.len()))
                .step_by(stride)
                .chain(worst)
                .filter(|&i| truth[i].is_finite() && pred[i].is_finite());
            // Few points (scalar outputs) are drawn large enough to see; many, smaller and
            // translucent, so density shows.
            let (radius, alpha) = if truth.len() <= 1000 {
                (4, 0.6)
            } else {
                (2, 0.35)
            };
            let c = color(if row_colours { k / cols } else { k });
            // The points are rasterised (one image, not thousands of circles in the SVG); the
            // axes go on top of them.
            let (pw, ph) = chart.plotting_area().dim_in_pixel();
            let mut pixels = vec![255u8; 3 * (pw * ph) as usize];
            {
                let layer = BitMapBackend::with_buffer(&mut pixels, (pw, ph)).into_drawing_area();
                let mut inner = ChartBuilder::on(&layer)
                    .build_cartesian_2d(range.clone(), range.clone())
                    .map_err(err)?;
                // The grid goes in the layer, under the points (the outer chart draws the
                // axes and labels only, at the same key points: same ranges, same counts).
                inner
                    .configure_mesh()
                    .disable_axes()
                    .light_line_style(TRANSPARENT)
                    .draw()
                    .map_err(err)?;
                inner
                    .draw_series(
                        shown.map(|i| {
                            Circle::new((truth[i], pred[i]), radius, c.mix(alpha).filled())
                        }),
                    )
                    .map_err(err)?;
                inner
                    .draw_series(LineSeries::new(
                        vec![(range.start, range.start), (range.end, range.end)],
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
                layer.present().map_err(err)?;
            }
            let image =
                BitMapElement::with_owned_buffer((range.start, range.end), (pw, ph), pixels)
                    .ok_or_else(|| anyhow!("scatter image of {pw} x {ph} pixels is malformed"))?;
            chart.plotting_area().draw(&image).map_err(err)?;
            let span = range.end - range.start;
            chart
                .configure_mesh()
                .x_desc("true")
                .y_desc("predicted")
                .disable_mesh()
                .x_label_formatter(&|v| tick(*v, span))
                .y_label_formatter(&|v| tick(*v, span))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(err)?;
        }
    })
}

/// A number with three significant digits, plain between 1e-3 and 1e5 (100, 0.25, 0.001),
/// "1e-5" style outside: log-axis tick labels and the report's tables.
pub fn plain_number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        // 1.00e-5 -> 1e-5, 2.50e-5 -> 2.5e-5
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = m.trim_end_matches('0').trim_end_matches('.');
        return format!("{m}e{e}");
    }
    let mag = a.log10().floor() as i32;
    let decimals = (2 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A tick label with no more decimals than the axis span needs (200, 0.5, 1e-3).
fn tick(v: f64, span: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.0e}");
    }
    let decimals = (-(span.abs().max(1e-300) / 10.0).log10().floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    // -2.0 -> -2, 0.50 -> 0.5: the axis shows the values, not the precision.
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// One panel of [`profiles`]: a caption, the true curves and the predicted ones (one per test
/// case, each `x.len()` long).
pub struct ProfilePanel {
    pub label: String,
    pub truth: Vec<Vec<f64>>,
    pub pred: Vec<Vec<f64>>,
}

/// Predicted (colour) over true (black) output curves of every test case, panels in rows of
/// `cols` on one shared y range (the DMF paper's Fig. 12).
pub fn profiles(
    path: &Path,
    title: &str,
    (x, xlabel, ylabel): (&[f64], &str, &str),
    panels: &[ProfilePanel],
    cols: usize,
) -> Result<()> {
    init_font();
    if panels.is_empty() || cols == 0 || x.len() < 2 {
        return Ok(());
    }
    let all = panels
        .iter()
        .flat_map(|p| p.truth.iter().chain(&p.pred))
        .flatten()
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return Ok(());
    }
    let pad = 0.04 * (hi - lo).max(1e-12);
    let (x0, x1) = (x[0], x[x.len() - 1]);
    let rows = panels.len().div_ceil(cols);
    figure!(path, (460 * cols as u32, 70 + 400 * rows as u32), |root| {
        root.fill(&WHITE).map_err(err)?;
        let (top, rest) = root.split_vertically(70);
        top.titled(title, ("sans-serif", 20)).map_err(err)?;
        let (_, legend) = top.split_vertically(38);
        let c = RGBColor(214, 39, 40);
        legend
            .draw(&Text::new(
                "black: true (solver)   red: predicted",
                (20, 6),
                ("sans-serif", 15).into_font(),
            ))
            .map_err(err)?;
        let areas = rest.split_evenly((rows, cols));
        for (k, p) in panels.iter().enumerate() {
            let mut chart = ChartBuilder::on(&areas[k])
                .caption(&p.label, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(38)
                .y_label_area_size(55)
                .build_cartesian_2d(x0..x1, lo - pad..hi + pad)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(xlabel)
                .y_desc(ylabel)
                .light_line_style(WHITE)
                .x_label_formatter(&|v| tick(*v, x1 - x0))
                .y_label_formatter(&|v| tick(*v, hi - lo))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(err)?;
            for t in &p.truth {
                chart
                    .draw_series(LineSeries::new(
                        x.iter().copied().zip(t.iter().copied()),
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?;
            }
            for q in &p.pred {
                chart
                    .draw_series(LineSeries::new(
                        x.iter().copied().zip(q.iter().copied()),
                        c.mix(0.8).stroke_width(1),
                    ))
                    .map_err(err)?;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{plain_number, tick};

    #[test]
    fn tick_labels_are_plain_numbers() {
        assert_eq!(plain_number(100.0), "100");
        assert_eq!(plain_number(0.5), "0.5");
        assert_eq!(plain_number(0.001), "0.001");
        assert_eq!(plain_number(2.5e-5), "2.5e-5");
        assert_eq!(plain_number(1e6), "1e6");
        assert_eq!(tick(200.0, 2000.0), "200");
        assert_eq!(tick(0.2, 1.0), "0.2");
        assert_eq!(tick(0.0, 1.0), "0");
        assert_eq!(tick(-2.0, 4.0), "-2");
        assert_eq!(tick(2.5, 4.0), "2.5");
    }
}
