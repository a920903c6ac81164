//! The PNG picture of one `--scale` dimension (plotters): a panel per backend, the dimension's values
//! across (log scale), msg/s (or µs) up (log scale), a line per API and figure: blocking solid, async
//! dashed.
//!
//! The text is drawn with a TrueType font found on the machine (DejaVu Sans, Debian's
//! `fonts-dejavu-core`, or what `fc-match` names), read at run time; plotters draws no text without one.

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// How a line is drawn: the blocking API's solid, the async API's dashed, Python Kombu's faint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Style {
    Solid,
    Dashed,
    Faint,
}

/// One line: its legend, its style, which of the dimension's figures it is (its colour), and its
/// points (value, figure).
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) style: Style,
    pub(crate) rate: usize,
    pub(crate) points: Vec<(f64, f64)>,
}

/// One picture: a title, what the values across are, the unit up, and a panel per backend with its
/// lines.
pub(crate) struct Picture<'a> {
    pub(crate) title: String,
    pub(crate) across: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) panels: Vec<(String, Vec<Line>)>,
}

/// Where a TrueType font is: the usual places first, then `fc-match`.
fn font_file() -> Result<Vec<u8>, String> {
    let known = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ];
    let matched = std::process::Command::new("fc-match")
        .args(["-f", "%{file}", "sans-serif:fontformat=TrueType"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .filter(|f| !f.is_empty());
    for path in known.iter().map(|p| p.to_string()).chain(matched) {
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(bytes);
        }
    }
    Err("no TrueType font for the plots' text: install one (Debian: apt-get install fonts-dejavu-core)".to_owned())
}

/// Registers the font once per process.
fn ensure_font() -> Result<(), String> {
    static FONT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let bytes: &'static [u8] = Box::leak(font_file()?.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the TrueType font found for the plots does not load".to_owned())
    })
    .clone()
}

/// The range a log axis needs for these values: from a bit under the least to a bit over the most.
pub(crate) fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(None, |acc: Option<(f64, f64)>, v| Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v)))))?;
    Some((lo / 1.5, hi * 1.5))
}

const COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];

/// Draws `picture` into a PNG at `path`.
pub(crate) fn draw(picture: &Picture<'_>, path: &Path) -> Result<(), String> {
    ensure_font()?;
    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let width = 520 * u32::try_from(picture.panels.len().max(1)).unwrap_or(1);
    let root = BitMapBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(&picture.title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    let all = picture.panels.iter().flat_map(|(_, lines)| lines.iter().flat_map(|l| l.points.iter()));
    let (x0, x1) = log_range(all.clone().map(|p| p.0)).ok_or_else(|| err(&"no points"))?;
    let (y0, y1) = log_range(all.map(|p| p.1)).ok_or_else(|| err(&"no rates above zero"))?;
    for (area, (backend, lines)) in root.split_evenly((1, picture.panels.len().max(1))).iter().zip(&picture.panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(backend, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(picture.across)
            .y_desc(picture.unit)
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| short(*v))
            .draw()
            .map_err(|e| err(&e))?;
        for line in lines {
            let colour = COLOURS[line.rate % COLOURS.len()];
            let style = match line.style {
                Style::Faint => colour.mix(0.45).stroke_width(1),
                Style::Solid | Style::Dashed => colour.stroke_width(2),
            };
            let points = line.points.iter().copied();
            let drawn = match line.style {
                Style::Dashed => chart.draw_series(DashedLineSeries::new(points, 6, 4, style)),
                Style::Solid | Style::Faint => chart.draw_series(LineSeries::new(points, style)),
            };
            let dashed = line.style == Style::Dashed;
            drawn.map_err(|e| err(&e))?.label(line.label.as_str()).legend(move |(x, y)| {
                let ends = vec![(x, y), (x + 24, y)];
                if dashed {
                    DashedPathElement::new(ends, 6, 4, style).into_dyn()
                } else {
                    PathElement::new(ends, style).into_dyn()
                }
            });
            chart.draw_series(line.points.iter().map(|&p| Circle::new(p, 3, style.filled()))).map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

/// A number for an axis: 1.5k, 20k, 1M.
pub(crate) fn short(v: f64) -> String {
    let (value, unit) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text =
        if value.fract().abs() < 0.05 || value.abs() >= 10.0 { format!("{value:.0}") } else { format!("{value:.1}") };
    format!("{text}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_span_the_values_above_zero() {
        assert_eq!(log_range([10.0, 1000.0, 0.0, f64::NAN].into_iter()), Some((10.0 / 1.5, 1500.0)));
        assert_eq!(log_range([0.0].into_iter()), None);
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short(1.0), "1");
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(20_000.0), "20k");
        assert_eq!(short(1_000_000.0), "1M");
        assert_eq!(short(0.5), "0.5");
    }

    #[test]
    fn a_picture_is_drawn_to_a_png() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("scale-test.png");
        let line = |label: &str, style, rate, k: f64| Line {
            label: label.to_owned(),
            style,
            rate,
            points: vec![(1.0, 1000.0 * k), (10.0, 800.0 * k), (100.0, 300.0 * k)],
        };
        let lines = vec![
            line("blocking publish", Style::Solid, 0, 2.0),
            line("async consume", Style::Dashed, 1, 1.0),
            line("python consume", Style::Faint, 1, 0.1),
        ];
        let panels = vec![("memory".to_owned(), lines)];
        let picture = Picture { title: "test".to_owned(), across: "queues", unit: "msg/s", panels };
        draw(&picture, &path).expect("drawn");
        let bytes = std::fs::read(&path).expect("written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
        let empty =
            Picture { title: "t".to_owned(), across: "x", unit: "µs", panels: vec![("m".to_owned(), Vec::new())] };
        assert!(draw(&empty, &dir.path().join("none.png")).is_err_and(|e| e.contains("no points")));
    }
}
