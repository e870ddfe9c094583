//! The benchmark's SVG plot: GB/s (warm) against block size, one panel per workload, one line
//! per backend, drawn with `plotters`.

use super::report::Row;
use super::{Backend, Workload, MIB};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use tessera::{Error, Result};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 900;
/// Height of the title and legend strip.
const TOP: u32 = 80;

/// Colours of the backends, in the order of [`Backend::available`].
fn colour(b: Backend) -> RGBColor {
    match b {
        Backend::Memory => RGBColor(0, 0, 0),
        Backend::Npy => RGBColor(128, 128, 128),
        Backend::ZarrNone => RGBColor(31, 119, 180),
        Backend::ZarrZstd => RGBColor(44, 160, 44),
        Backend::ZarrBlosc => RGBColor(23, 190, 207),
        Backend::Hdf5None => RGBColor(214, 39, 40),
        Backend::Hdf5Deflate => RGBColor(255, 127, 14),
    }
}

/// Draws the plot of `rows` (block sizes `blocks`, in bytes) to `path`.
///
/// # Errors
/// The file cannot be written.
pub(super) fn draw(path: &Path, rows: &[Row], blocks: &[usize], title: &str) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| Error::format(path, format!("drawing the plot: {e}"));
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, body) = root.split_vertically(TOP);
    legend(&top, title).map_err(|e| fail(&e))?;
    for (area, w) in body.split_evenly((2, 2)).iter().zip(Workload::ALL) {
        panel(area, w, rows, blocks).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

type Drawn<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

/// The title, and one coloured line with its name per backend.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> Drawn<DB::ErrorType> {
    area.draw(&Text::new(title.to_string(), (20, 12), ("sans-serif", 20)))?;
    for (i, b) in Backend::available().into_iter().enumerate() {
        let x = 20 + 160 * i as i32;
        let y = 55;
        let style = colour(b).stroke_width(3);
        area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], style))?;
        area.draw(&Circle::new((x + 14, y), 4, colour(b).filled()))?;
        area.draw(&Text::new(b.name(), (x + 36, y - 8), ("sans-serif", 16)))?;
    }
    Ok(())
}

/// One workload: GB/s against block size (MiB, log scale), a line per backend.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    w: Workload,
    rows: &[Row],
    blocks: &[usize],
) -> Drawn<DB::ErrorType> {
    // x: log2 of the block size in MiB, labelled with the sizes at whole powers of two.
    let x_of = |b: usize| (b as f64 / MIB as f64).log2();
    let lo = blocks.first().copied().map_or(0.0, x_of);
    let hi = blocks.last().copied().map_or(0.0, x_of);
    let ymax = rows
        .iter()
        .filter(|r| r.workload == w)
        .filter_map(Row::gbps)
        .fold(0.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(w.title(), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((lo - 0.5)..(hi + 0.5), 0.0..(ymax * 1.15).max(0.001))?;
    let decimals = if ymax >= 10.0 {
        0
    } else if ymax >= 1.0 {
        1
    } else if ymax >= 0.1 {
        2
    } else {
        3
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_labels(((hi - lo).round() as usize + 2).min(12))
        .x_desc("block size (MiB, log scale)")
        .y_desc("GB/s")
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                format!("{}", 2f64.powi(v.round() as i32))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .draw()?;
    for b in Backend::available() {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.workload == w && r.backend == b)
            .filter_map(|r| r.gbps().map(|g| (x_of(r.block), g)))
            .collect();
        let c = colour(b);
        chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    Ok(())
}
