use std::path::{Path, PathBuf};

use apache_avro::schema_compatibility::SchemaCompatibility;
use slamon_domain as d;
use slamon_domain::{Event, EventEnvelope, Labels, Sample};

use super::*;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn labels() -> Labels {
    [("__name__", "node_filesystem_avail_bytes"), ("device", "/dev/sda2"), ("job", "host")].into_iter().collect()
}

/// One fixed example of every event type (these are what the golden files hold).
pub(crate) fn examples() -> Vec<EventEnvelope> {
    let env = |n: u8, event| EventEnvelope {
        event_id: format!("01890a5d-ac96-774b-bcce-b302099a8{n:03}").parse().unwrap(),
        occurred_at_ms: 1_700_000_000_123,
        producer: "etl@golden".into(),
        event,
    };
    vec![
        env(
            1,
            Event::MetricAggregatesComputed(d::MetricAggregatesComputed {
                labels: labels(),
                computed_at_ms: 1_700_000_000_000,
                windows: vec![
                    d::WindowAggregate {
                        window: d::Window::H1,
                        min: Some(1.5),
                        max: Some(9.0),
                        avg: Some(4.25),
                        std_dev: Some(0.5),
                        samples: 240,
                    },
                    d::WindowAggregate {
                        window: d::Window::H3,
                        min: Some(1.0),
                        max: Some(9.0),
                        avg: Some(4.0),
                        std_dev: None,
                        samples: 1,
                    },
                    d::WindowAggregate {
                        window: d::Window::H12,
                        min: None,
                        max: None,
                        avg: None,
                        std_dev: None,
                        samples: 0,
                    },
                ],
            }),
        ),
        env(
            2,
            Event::MetricForecastComputed(d::MetricForecastComputed {
                labels: labels(),
                computed_at_ms: 1_700_000_000_000,
                model: "holt_winters_add".into(),
                rmse: 0.75,
                candidates: vec![
                    d::ForecastCandidate { model: "holt_winters_add".into(), rmse: Some(0.75), note: None },
                    d::ForecastCandidate {
                        model: "holt_winters_mul".into(),
                        rmse: None,
                        note: Some("series has values <= 0".into()),
                    },
                ],
                points: vec![Sample::new(1_700_000_060_000, 3.0), Sample::new(1_700_000_120_000, 5.0)],
                intervals: vec![
                    d::PredictionInterval { lower_80: 2.0, upper_80: 4.0, lower_95: 1.5, upper_95: 4.5 },
                    d::PredictionInterval { lower_80: 3.5, upper_80: 6.5, lower_95: 2.75, upper_95: 7.25 },
                ],
                min: 3.0,
                max: 5.0,
                avg: 4.0,
            }),
        ),
        env(
            3,
            Event::MetricMetadataComputed(d::MetricMetadataComputed {
                labels: labels(),
                computed_at_ms: 1_700_000_000_000,
                constant: false,
                stationarity: Some(d::Stationarity {
                    adf_statistic: -3.5,
                    p_value: 0.008,
                    stationary: true,
                    used_lag: 4,
                }),
                autocorrelation: vec![(0, 1.0), (1, 0.9), (7, 0.4)],
                seasonality: Some(d::Seasonality {
                    method: "fft+decomposition".into(),
                    add: Some(d::SeasonalFit { period: 60, period_seconds: 3600.0, error: 12.5 }),
                    mul: None,
                }),
            }),
        ),
        env(
            4,
            Event::SlaSamplesObserved(d::SlaSamplesObserved {
                labels: labels(),
                window_start_ms: 1_699_950_000_000,
                samples: vec![Sample::new(1_700_000_000_000, 42.0), Sample::new(1_700_000_015_000, -1.0e12)],
            }),
        ),
        env(
            5,
            Event::SlaSetDefined(d::SlaSetDefined {
                version: 3,
                entries: vec![d::SlaEntry {
                    labels: labels(),
                    range: d::SlaRange { min: 0.0, max: 1e10 },
                    for_minutes: 5,
                }],
            }),
        ),
        env(6, Event::MetricRemoved(d::MetricRemoved { labels: labels(), last_seen_ms: 1_699_999_000_000 })),
    ]
}

#[test]
fn every_event_round_trips_through_its_latest_schema() {
    for env in examples() {
        let bytes = encode_datum(&env).unwrap();
        let file = schemas::latest(env.event.event_type()).unwrap();
        assert_eq!(decode_datum(file, &bytes).unwrap(), env);
    }
}

#[test]
fn every_schema_file_parses_names_its_record_and_is_listed() {
    let mut on_disk = Vec::new();
    for dir in std::fs::read_dir(schemas_dir()).unwrap() {
        let dir = dir.unwrap();
        if !dir.file_type().unwrap().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            if let Some(v) = name.strip_prefix('v').and_then(|n| n.strip_suffix(".avsc")) {
                on_disk.push((dir.file_name().into_string().unwrap(), v.parse::<u32>().unwrap()));
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<_> = SCHEMAS.iter().map(|s| (s.dir.to_owned(), s.version)).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every schemas/<event>/vN.avsc must be listed in SCHEMAS (and the other way round)");
    for s in SCHEMAS.iter() {
        let apache_avro::Schema::Record(r) = s.parsed() else { panic!("{} is not a record", s.dir) };
        assert_eq!(r.name.fullname(None), s.full_name());
        for field in ["event_id", "event_type", "schema_version", "occurred_at", "producer"] {
            assert!(r.lookup.contains_key(field), "{} v{} lacks envelope field {field}", s.dir, s.version);
        }
    }
}

#[test]
fn each_version_can_read_every_older_one() {
    // BACKWARD_TRANSITIVE: the newest reader reads every released writer, and so does
    // each intermediate version.
    for newer in SCHEMAS.iter() {
        for older in SCHEMAS.iter().filter(|o| o.event_type == newer.event_type && o.version <= newer.version) {
            SchemaCompatibility::can_read(older.parsed(), newer.parsed())
                .unwrap_or_else(|e| panic!("{} v{} cannot read v{}: {e}", newer.dir, newer.version, older.version));
        }
    }
}

/// Golden files: `schemas/<event>/vN.golden.avro` is a datum written with vN when vN was
/// the latest, and `vN.golden.json` the domain event it held. Every released version must
/// still decode to the same event. `SLAMON_BLESS=1` writes missing files (never rewrites).
#[test]
fn golden_files_of_every_released_version_still_decode() {
    let bless = std::env::var("SLAMON_BLESS").is_ok_and(|v| v == "1");
    let examples = examples();
    for file in SCHEMAS.iter() {
        let base = schemas_dir().join(file.dir);
        let bin = base.join(format!("v{}.golden.avro", file.version));
        let json = base.join(format!("v{}.golden.json", file.version));
        if !bin.exists() && bless && schemas::latest(file.event_type).unwrap().version == file.version {
            let env = examples.iter().find(|e| e.event.event_type() == file.event_type).unwrap();
            std::fs::write(&bin, encode_datum(env).unwrap()).unwrap();
            std::fs::write(&json, serde_json::to_string_pretty(env).unwrap() + "\n").unwrap();
        }
        let bytes = std::fs::read(&bin)
            .unwrap_or_else(|e| panic!("{}: {e} (run with SLAMON_BLESS=1 once for a new version)", bin.display()));
        let expected: EventEnvelope = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let decoded = decode_datum(file, &bytes).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert_eq!(decoded, expected, "{}", bin.display());
    }
}

#[test]
fn decoding_rejects_lies_and_garbage() {
    let file = schemas::latest("MetricRemoved").unwrap();
    let mut env = examples().pop().unwrap();
    let bytes = encode_datum(&env).unwrap();
    // truncated
    assert!(decode_datum(file, &bytes[..bytes.len() - 2]).is_err());
    // trailing bytes
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode_datum(file, &longer).is_err());
    // a metric_id that does not match the labels is a poison record, not a silent mix-up
    let mut value = wire::to_avro(&env).unwrap();
    if let apache_avro::types::Value::Record(fields) = &mut value {
        for (name, v) in fields.iter_mut() {
            if name == "metric_id" {
                *v = apache_avro::types::Value::String("000000000000000000000000".into());
            }
        }
    }
    let bad = apache_avro::writer::datum::GenericDatumWriter::builder(file.parsed())
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let err = decode_datum(file, &bad).unwrap_err();
    assert!(err.to_string().contains("does not match the labels"), "{err}");
    assert!(!err.is_retryable());
    env.producer = "other".into();
    assert_ne!(decode_datum(file, &encode_datum(&env).unwrap()).unwrap().producer, "etl@golden");
}
