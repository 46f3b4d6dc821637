//! The empirical coverage of the 80 % and 95 % prediction intervals on the checked-in
//! population (`tests/population/holt_winters.json`: 50 series of five kinds), over
//! rolling origins: from each of the last ten origins 10 points apart, 10 steps
//! forecast from what precedes the origin, each actual value checked against its
//! step's intervals (5 000 values). `examples/interval_coverage.rs` prints the same per
//! kind and model over more origins; the figures are in BENCHMARKS.md.

use slamon_analytics::forecast;

#[test]
fn interval_coverage_is_within_five_points_of_nominal_on_the_population() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/population/holt_winters.json");
    let population: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut points, mut in80, mut in95) = (0usize, 0usize, 0usize);
    for s in population["series"].as_array().unwrap() {
        let y: Vec<f64> = s["x"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
        let period = s["period"].as_u64().map(|p| p as usize);
        for i in 0..10 {
            let origin = y.len() - 10 - 10 * i;
            let f = forecast::forecast(&y[..origin], period, 10, 10).unwrap();
            let (i80, i95) = (f.interval(0.8), f.interval(0.95));
            assert_eq!((i80.len(), i95.len()), (10, 10), "{}: {} has no intervals", s["name"], f.model);
            for (k, actual) in y[origin..origin + 10].iter().enumerate() {
                points += 1;
                in80 += usize::from(i80[k].0 <= *actual && *actual <= i80[k].1);
                in95 += usize::from(i95[k].0 <= *actual && *actual <= i95[k].1);
            }
        }
    }
    let (c80, c95) = (100.0 * in80 as f64 / points as f64, 100.0 * in95 as f64 / points as f64);
    eprintln!("coverage over {points} values: 80 % interval {c80:.1} %, 95 % interval {c95:.1} %");
    assert!((c80 - 80.0).abs() <= 5.0, "80 % interval covers {c80:.1} %");
    assert!((c95 - 95.0).abs() <= 5.0, "95 % interval covers {c95:.1} %");
}
