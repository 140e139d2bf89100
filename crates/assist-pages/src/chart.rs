//! The dashboard's weekly on-time trend as an inline SVG line (no script, no stylesheet
//! rule needed: presentation attributes only), with the figures as a table beside it so
//! the chart is never the only way to read them.

use serde_json::Value;

/// Width and height of the chart's drawing area, in SVG units.
const WIDTH: f64 = 480.0;
/// See [`WIDTH`].
const HEIGHT: f64 = 160.0;

/// The points of the weeks' on-time rates (`weeks` as the API answers them), left to
/// right; a week with nothing decided has no point.
fn points(weeks: &[Value]) -> Vec<(f64, f64)> {
    let n = weeks.len().max(2) as f64 - 1.0;
    weeks
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let rate = w["counts"]["on_time_rate"].as_f64()?;
            Some((
                40.0 + i as f64 / n * (WIDTH - 60.0),
                10.0 + (1.0 - rate) * (HEIGHT - 30.0),
            ))
        })
        .collect()
}

/// The SVG of the trend, titled `title` (escaped here: it goes into markup).
pub fn svg(weeks: &[Value], title: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let pts = points(weeks);
    let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let dots: String = pts
        .iter()
        .map(|(x, y)| format!(r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="#0b4f8a"/>"##))
        .collect();
    let grid: String = [0.0, 0.5, 1.0]
        .iter()
        .map(|r| {
            let y = 10.0 + (1.0 - r) * (HEIGHT - 30.0);
            format!(
                r##"<line x1="40" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ccc"/><text x="2" y="{:.1}" font-size="11" fill="#444">{:.0}%</text>"##,
                WIDTH - 20.0,
                y + 4.0,
                r * 100.0
            )
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="trend-title" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"><title id="trend-title">{}</title>{grid}<polyline fill="none" stroke="#0b4f8a" stroke-width="2" points="{}"/>{dots}</svg>"##,
        escape(title),
        line.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_week_with_nothing_decided_has_no_point_and_rates_map_top_to_bottom() {
        let weeks = [
            json!({"counts": {"on_time_rate": 1.0}}),
            json!({"counts": {"on_time_rate": null}}),
            json!({"counts": {"on_time_rate": 0.0}}),
        ];
        let pts = points(&weeks);
        assert_eq!(pts, vec![(40.0, 10.0), (460.0, 140.0)]);
        let svg = svg(&weeks, "按时率 <趋势>");
        assert!(svg.contains("<title id=\"trend-title\">按时率 &lt;趋势&gt;</title>"));
        assert_eq!(svg.matches("<circle").count(), 2);
    }
}
