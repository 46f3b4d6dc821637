//! Daily seasonality at one-minute resolution (period 1440): synthetic infrastructure
//! series of `DAYS` days at 1-minute steps — traffic (a daily cycle with a lunchtime bump
//! and noise), CPU (the same shape, multiplicative noise) and latency (a daily cycle
//! with spikes) — each forecast 10 steps from 20 origins 30 minutes apart in its last
//! day. Prints, per kind, the models chosen, the time per forecast, the RMSE against the
//! persistence forecast's and the series' noise level, and the share of actual values
//! inside the 80 % and 95 % intervals.
//!
//!     cargo run --release -p slamon-analytics --example daily_season [DAYS]
#![allow(clippy::print_stdout)] // a report printed for a person

use std::f64::consts::TAU;
use std::time::Instant;

use slamon_analytics::testing::noise;
use slamon_analytics::{forecast, seasonality};

const DAY: usize = 1440;
const HORIZON: usize = 10;

/// The daily shape: low at night, high in the day, a bump at lunchtime; in [0, 1].
fn daily(t: usize) -> f64 {
    let x = (t % DAY) as f64 / DAY as f64;
    let day = 0.5 - 0.5 * (TAU * x).cos();
    let lunch = (-((x - 0.52) / 0.03).powi(2)).exp();
    (0.8 * day + 0.2 * lunch).clamp(0.0, 1.0)
}

fn series(kind: &str, n: usize, seed: u64) -> (Vec<f64>, f64) {
    let mut e = noise(seed);
    match kind {
        "traffic" => ((0..n).map(|t| 200.0 + 800.0 * daily(t) + 25.0 * e()).collect(), 25.0),
        "cpu" => ((0..n).map(|t| (10.0 + 60.0 * daily(t)) * (1.0 + 0.04 * e())).collect(), 0.04 * 40.0),
        _ => (
            (0..n)
                .map(|t| {
                    let spike = if t % 397 < 3 { 40.0 } else { 0.0 };
                    50.0 + 30.0 * daily(t) + spike + 3.0 * e()
                })
                .collect(),
            3.0,
        ),
    }
}

fn rmse(pred: &[f64], actual: &[f64]) -> f64 {
    (pred.iter().zip(actual).map(|(p, a)| (p - a).powi(2)).sum::<f64>() / actual.len() as f64).sqrt()
}

fn main() {
    let days: usize = std::env::args().nth(1).map(|a| a.parse().expect("DAYS: a number")).unwrap_or(3);
    let n = days * DAY;
    println!("{days} days at 1-minute steps ({n} points), horizon {HORIZON}, 20 origins per kind\n");
    println!("| kind | detected period | models chosen | ms per forecast | RMSE | persistence RMSE | noise σ | inside 80 % | inside 95 % |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, kind) in ["traffic", "cpu", "latency"].into_iter().enumerate() {
        let (y, sigma) = series(kind, n, 7 + i as u64);
        let period = seasonality::seasonality(&y).and_then(|s| s.additive.map(|d| d.period));
        let (mut sq, mut sq_naive, mut count, mut secs) = (0.0, 0.0, 0usize, 0.0);
        let (mut inside, mut points) = ([0usize; 2], 0usize);
        let mut models = std::collections::BTreeMap::<String, usize>::new();
        for o in 0..20 {
            let origin = n - HORIZON - 30 * o;
            let started = Instant::now();
            let Some(f) = forecast::forecast(&y[..origin], period, 10, HORIZON) else { continue };
            secs += started.elapsed().as_secs_f64();
            *models.entry(f.model.clone()).or_default() += 1;
            let actual = &y[origin..origin + HORIZON];
            for (level, n) in [0.8, 0.95].into_iter().zip(&mut inside) {
                let within = f.interval(level).iter().zip(actual).filter(|((lo, hi), a)| lo <= *a && *a <= hi).count();
                *n += within;
            }
            points += HORIZON;
            sq += rmse(&f.values, actual).powi(2);
            sq_naive += rmse(&[y[origin - 1]; HORIZON], actual).powi(2);
            count += 1;
        }
        let c = count.max(1) as f64;
        println!(
            "| {kind} | {} | {} | {:.1} | {:.2} | {:.2} | {sigma:.2} | {:.1} % | {:.1} % |",
            period.map_or("none".into(), |p| p.to_string()),
            models.iter().map(|(m, k)| format!("{m} ×{k}")).collect::<Vec<_>>().join(", "),
            1000.0 * secs / c,
            (sq / c).sqrt(),
            (sq_naive / c).sqrt(),
            100.0 * inside[0] as f64 / points.max(1) as f64,
            100.0 * inside[1] as f64 / points.max(1) as f64
        );
    }
}
