//! Results: a table for people, one JSON object for scripts.

use groupmesh_runtimes::RuntimeName;
use serde_json::{json, Value};

/// The `q`-quantile (0..=1) of `sorted` by nearest rank; 0 when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Sorts a copy of `xs`.
pub(crate) fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// p50, p90, p99 and max of `xs` as JSON.
pub(crate) fn summary(xs: &[f64]) -> Value {
    let s = sorted(xs);
    json!({
        "n": s.len(),
        "p50": quantile(&s, 0.50),
        "p90": quantile(&s, 0.90),
        "p99": quantile(&s, 0.99),
        "max": s.last().copied().unwrap_or(0.0),
    })
}

/// Milliseconds, for people.
pub(crate) fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else {
        format!("{x:.1} ms")
    }
}

/// `p50 / p99` of sorted samples in microseconds, for people.
pub(crate) fn p50_p99_us(sorted: &[f64]) -> String {
    format!(
        "{} / {}",
        us(quantile(sorted, 0.5)),
        us(quantile(sorted, 0.99))
    )
}

/// Microseconds, for people.
pub(crate) fn us(x: f64) -> String {
    if x.is_infinite() {
        "∞".to_owned()
    } else if x >= 1000.0 {
        format!("{:.2} ms", x / 1000.0)
    } else {
        format!("{x:.0} µs")
    }
}

/// Nanoseconds between two CLOCK_REALTIME stamps, as milliseconds (negative
/// if `to` is earlier).
#[allow(clippy::cast_precision_loss)]
pub(crate) fn ms_between(from_ns: u64, to_ns: u64) -> f64 {
    (i128::from(to_ns) - i128::from(from_ns)) as f64 / 1e6
}

/// One scenario's results.
pub(crate) struct Report {
    title: String,
    rows: Vec<[String; 4]>,
    notes: Vec<String>,
    pub(crate) json: Value,
}

impl Report {
    /// A scenario's report on `runtime`, with its parameters.
    pub(crate) fn on(runtime: RuntimeName, title: &str, params: Value) -> Self {
        let mut r = Report::new(format!("{title} ({})", runtime.name()), params);
        r.json["scenario"] = json!(title);
        r.json["runtime"] = json!(runtime.name());
        r
    }

    pub(crate) fn new(title: impl Into<String>, params: Value) -> Self {
        let title = title.into();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        Report {
            json: json!({"scenario": title, "params": params, "loadavg": load.join(" "), "cpus": cpus}),
            title,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A row without a target.
    pub(crate) fn row(&mut self, what: impl Into<String>, value: impl Into<String>) {
        self.rows
            .push([what.into(), value.into(), String::new(), String::new()]);
    }

    /// A row with a target; `met` says whether it holds. Returns `met`.
    pub(crate) fn target(
        &mut self,
        what: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) -> bool {
        let verdict = if met { "met" } else { "MISSED" };
        self.rows
            .push([what.into(), value.into(), target.into(), verdict.into()]);
        if let Some(t) = self.json.get_mut("targets") {
            if let Some(a) = t.as_array_mut() {
                a.push(json!(met));
            }
        } else {
            self.json["targets"] = json!([met]);
        }
        met
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Sets a JSON field of the results.
    pub(crate) fn set(&mut self, key: &str, v: Value) {
        self.json[key] = v;
    }

    pub(crate) fn print(&self, as_json: bool) {
        if as_json {
            let mut v = self.json.clone();
            v["rows"] = json!(self
                .rows
                .iter()
                .map(|r| json!({"what": r[0], "value": r[1], "target": r[2], "verdict": r[3]}))
                .collect::<Vec<_>>());
            v["notes"] = json!(self.notes);
            println!("{v}");
            return;
        }
        let width = |col: usize| {
            self.rows
                .iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        println!("\n== {} ==", self.title);
        for r in &self.rows {
            let line = format!(
                "  {:<w0$}  {:>w1$}  {:<w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w0,
                w1 = w1,
                w2 = w2
            );
            println!("{}", line.trim_end());
        }
        for n in &self.notes {
            println!("  note: {n}");
        }
        println!(
            "  machine: {} CPUs, load average {} when the scenario started",
            self.json["cpus"],
            self.json["loadavg"].as_str().unwrap_or("?")
        );
    }
}
