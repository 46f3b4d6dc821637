//! Agreement with statsmodels on the fixtures of `scripts/statsmodels_fixtures.py`
//! (white noise, random walk, trend + seasonality, multiplicative seasonality, a level
//! shift, and statsmodels' bundled co2 and elnino data sets). Each tolerance is
//! written beside its assertion.

use serde::Deserialize;
use slamon_analytics::{acf, adf, forecast, holt_winters, seasonality};

#[derive(Deserialize)]
struct Adf {
    statistic: f64,
    p_value: f64,
    used_lag: usize,
    nobs: usize,
}

#[derive(Deserialize)]
struct AcfRef {
    nlags: usize,
    values: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
}

#[derive(Deserialize)]
struct Hw {
    holdout_rmse: f64,
    sse: f64,
}

#[derive(Deserialize)]
struct Fixture {
    name: String,
    x: Vec<f64>,
    period: Option<usize>,
    /// How the seasonality was built: "add", "mul", "unknown" (real data), none.
    seasonal_form: Option<String>,
    adf: Adf,
    acf: AcfRef,
    hw_add: Option<Hw>,
    hw_mul: Option<Hw>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<Fixture> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(out.len(), 7, "the seven fixtures of scripts/statsmodels_fixtures.py");
    out
}

/// Holt-Winters fitted on all but the last 10 points of `x`, and its RMSE on those 10.
fn holdout_fit(x: &[f64], kind: holt_winters::Seasonal, period: usize) -> (holt_winters::HoltWinters, f64) {
    let (train, test) = x.split_at(x.len() - 10);
    let model = holt_winters::HoltWinters::fit(train, kind, period).unwrap();
    let pred = model.forecast(10);
    let rmse = (pred.iter().zip(test).map(|(p, a)| (p - a).powi(2)).sum::<f64>() / 10.0).sqrt();
    (model, rmse)
}

/// Whether `kind` is the seasonal form a series was built with ("add", "mul"); on real
/// data ("unknown") either form is.
fn own_form(seasonal_form: Option<&str>, kind: holt_winters::Seasonal) -> bool {
    matches!(
        (seasonal_form, kind),
        (Some("unknown"), _)
            | (Some("add"), holt_winters::Seasonal::Additive)
            | (Some("mul"), holt_winters::Seasonal::Multiplicative)
    )
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn adf_agrees_with_adfuller_autolag_aic() {
    for f in fixtures() {
        let r = adf::adfuller(&f.x, None).unwrap();
        assert_eq!(r.used_lag, f.adf.used_lag, "{}: lag chosen by AIC", f.name);
        assert_eq!(r.nobs, f.adf.nobs, "{}", f.name);
        // statistic within 1e-6 relative
        assert!(rel(r.statistic, f.adf.statistic) < 1e-6, "{}: {} vs {}", f.name, r.statistic, f.adf.statistic);
        // p-value within 1e-3 absolute
        assert!((r.p_value - f.adf.p_value).abs() < 1e-3, "{}: p {} vs {}", f.name, r.p_value, f.adf.p_value);
    }
}

#[test]
fn acf_agrees_with_statsmodels_and_keeps_the_same_lags() {
    for f in fixtures() {
        let r = acf::acf(&f.x, f.acf.nlags, 0.05).unwrap();
        assert_eq!(r.values.len(), f.acf.values.len());
        for k in 0..r.values.len() {
            // values and bands within 1e-9 absolute
            assert!(
                (r.values[k] - f.acf.values[k]).abs() < 1e-9,
                "{} lag {k}: {} vs {}",
                f.name,
                r.values[k],
                f.acf.values[k]
            );
            assert!((r.lower[k] - f.acf.lower[k]).abs() < 1e-9, "{} lag {k} lower", f.name);
            assert!((r.upper[k] - f.acf.upper[k]).abs() < 1e-9, "{} lag {k} upper", f.name);
        }
        let expected: Vec<u32> = (0..f.acf.values.len())
            .filter(|&k| f.acf.lower[k] > 0.0 || f.acf.upper[k] < 0.0)
            .map(|k| k as u32)
            .collect();
        let got: Vec<u32> = r.significant().into_iter().map(|(k, _)| k).collect();
        assert_eq!(got, expected, "{}: significant lags", f.name);
    }
}

#[test]
fn holt_winters_holdout_rmse_is_no_worse_than_statsmodels_by_more_than_2_percent() {
    let mut report = Vec::new();
    for f in fixtures() {
        let Some(period) = f.period else { continue };
        for (kind, reference) in
            [(holt_winters::Seasonal::Additive, &f.hw_add), (holt_winters::Seasonal::Multiplicative, &f.hw_mul)]
        {
            let Some(reference) = reference else { continue };
            let own_form = own_form(f.seasonal_form.as_deref(), kind);
            let (model, rmse) = holdout_fit(&f.x, kind, period);
            report.push(format!(
                "{} {kind:?}{}: hold-out RMSE slamon {rmse:.6} statsmodels {:.6} ({:+.1} %); SSE slamon {:.6} statsmodels {:.6}",
                f.name,
                if own_form { "" } else { " (not the series' form)" },
                reference.holdout_rmse,
                (rmse / reference.holdout_rmse - 1.0) * 100.0,
                model.sse,
                reference.sse
            ));
            // no worse than statsmodels by more than 2 % (better is welcome)
            // the same objective (SSE of one-step errors, same bounds) is minimised at
            // least about as well as statsmodels does: within 0.1 % relative, or better
            assert!(model.sse <= reference.sse * (1.0 + 1e-3), "{}", report.join("\n"));
            // hold-out RMSE no worse than statsmodels' by more than 2 % for the model of the
            // series' own seasonal form (both forms on the real series). A multiplicative
            // model of an additively seasonal series has several optima of the SSE; where
            // statsmodels stops in a worse one (its SSE 23–30 % higher on trend_seasonal and
            // level_shift), the forecasts differ by more than the 2 % either way: reported
            // above, measured over 200 fits by scripts/holdout_study.py (BENCHMARKS.md).
            if own_form {
                assert!(rmse <= reference.holdout_rmse * 1.02, "{}", report.join("\n"));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_detected_period_is_the_true_one_on_the_synthetic_seasonal_fixtures() {
    for f in fixtures() {
        if !matches!(f.name.as_str(), "trend_seasonal" | "mul_seasonal" | "level_shift") {
            continue;
        }
        let s = seasonality::seasonality(&f.x).unwrap();
        let period = f.period.unwrap();
        assert_eq!(s.additive.unwrap().period, period, "{} additive (fft peak {})", f.name, s.fft_period);
        if let Some(m) = s.multiplicative {
            assert_eq!(m.period, period, "{} multiplicative", f.name);
        }
    }
}

#[test]
fn selection_reports_every_candidate() {
    for f in fixtures() {
        let fc = forecast::forecast(&f.x, f.period, 10, 10).unwrap();
        assert_eq!(fc.values.len(), 10);
        assert!(fc.candidates.len() >= 3, "{}: {:?}", f.name, fc.candidates);
        // the kept model reports its own hold-out RMSE (it is chosen by its in-sample
        // multi-step error when slamon fits it, so not always the lowest hold-out RMSE)
        let kept = fc.candidates.iter().find(|c| c.model == fc.model).unwrap();
        assert_eq!(Some(fc.rmse), kept.rmse, "{}: {:?}", f.name, fc.candidates);
    }
}

#[derive(Deserialize)]
struct PopulationSeries {
    name: String,
    seasonal_form: String,
    period: usize,
    x: Vec<f64>,
    hw_add: Option<Hw>,
    hw_mul: Option<Hw>,
}

#[derive(Deserialize)]
struct Population {
    series: Vec<PopulationSeries>,
}

/// The Holt-Winters fits of `tests/population/holt_winters.json` (50 series: 10 of each
/// synthetic seasonal kind with other seeds, 10 windows each of co2 and elnino ending 3
/// months apart), where the noise of one series' 10 hold-out points partly averages out.
#[test]
fn holt_winters_agrees_with_statsmodels_over_a_population() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/population/holt_winters.json");
    let population: Population = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(population.series.len(), 50);
    // (series kind, model form) → (own form?, log hold-out RMSE ratios slamon/statsmodels)
    let mut groups: std::collections::BTreeMap<(String, &str), (bool, Vec<f64>)> = Default::default();
    for s in &population.series {
        for (kind, form, reference) in [
            (holt_winters::Seasonal::Additive, "add", &s.hw_add),
            (holt_winters::Seasonal::Multiplicative, "mul", &s.hw_mul),
        ] {
            let Some(reference) = reference else { continue };
            let (model, rmse) = holdout_fit(&s.x, kind, s.period);
            // every fit: statsmodels' objective minimised at least about as well (SSE
            // within 0.1 % of statsmodels' or lower)
            assert!(
                model.sse <= reference.sse * (1.0 + 1e-3),
                "{} {form} n={}: SSE slamon {} statsmodels {}",
                s.name,
                s.x.len(),
                model.sse,
                reference.sse
            );
            let own = own_form(Some(&s.seasonal_form), kind);
            let group = groups.entry((s.name.clone(), form)).or_insert((own, Vec::new()));
            group.1.push((rmse / reference.holdout_rmse).ln());
        }
    }
    let geo = |logs: &[f64]| (logs.iter().sum::<f64>() / logs.len() as f64).exp();
    let report: Vec<String> = groups
        .iter()
        .map(|((name, form), (own, logs))| {
            let note = if *own { "" } else { " (not the series' form)" };
            format!(
                "{name} {form}{note}: {} fits, hold-out RMSE slamon/statsmodels geometric mean {:.4}",
                logs.len(),
                geo(logs)
            )
        })
        .collect();
    eprintln!("{}", report.join("\n"));
    assert_eq!(groups.values().map(|g| g.1.len()).sum::<usize>(), 100, "every series fitted add and mul");
    let own: Vec<f64> = groups.values().filter(|g| g.0).flat_map(|g| g.1.iter().copied()).collect();
    // the model of each series' own form (both forms on real data): hold-out RMSE no
    // worse than statsmodels' by more than 2 % as a geometric mean over those 70 fits,
    // and by more than 5 % over the 10 of any one kind (a few fits where the two
    // optimisers stop in different optima move a 10-fit mean by several per cent)
    assert_eq!(own.len(), 70);
    assert!(geo(&own) <= 1.02, "all own-form fits: {:.4}\n{}", geo(&own), report.join("\n"));
    for (own, logs) in groups.values() {
        assert!(!own || geo(logs) <= 1.05, "{}", report.join("\n"));
    }
}
