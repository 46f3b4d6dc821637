//! Alerts to Alertmanager: the SLA manager evaluates the SLA set every
//! `--alert-evaluation-interval` from the read models, as a Prometheus rule group would,
//! and sends its alerts to every configured Alertmanager (API v2,
//! `POST /api/v2/alerts`) with the cadence of Prometheus's alert generator
//! (the alert generator compliance specification 1.0, prometheus/compliance,
//! `alert_generator/specification.md`, and Prometheus's `rules/alerting.go`):
//!
//! - two alert names: [`VIOLATED`] while an SLA is firing, [`PREDICTED`] while its
//!   forecast says it will fire (it has not yet); pending SLAs send nothing;
//! - labels: the series' labels (`__name__` as `sla_metric`, colliding names as
//!   `exported_<name>`, as in `/metrics/prometheus`), `sla_id` and `alertname`;
//!   annotations: `summary`, `description` (the `/status` or `/future-violations` text),
//!   the range, for a predicted violation `predicted_fire_time` and (when the forecast
//!   has intervals) `probability` of the breach, and `generatorURL` links to the SLA on
//!   the SLA manager's page;
//! - a firing alert is sent when it starts firing and again whenever the last send is
//!   at least the resend delay old; its `endsAt` is the evaluation time plus 4 × the
//!   larger of the resend delay and the evaluation interval (so two lost sends do not
//!   resolve it); `startsAt` is when the SLA fired (its violating run's start + `for`,
//!   from the samples, so a restart or a second replica sends the same);
//! - a resolved alert is sent at once with `endsAt` = the resolution time, and re-sent
//!   with the same cadence for 15 minutes unless it fires again;
//! - each Alertmanager has its own queue (the newest version of an alert replaces a
//!   queued one; at most [`QUEUE_CAPACITY`] alerts, oldest dropped and counted) and its
//!   own sender, which retries with backoff (1 s doubling to 1 min) while Alertmanager
//!   is down or answers 5xx/429; nothing else waits for it. Several SLA manager replicas
//!   send the same alerts, which Alertmanager deduplicates by labels.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde_json::{json, Value};
use slamon_domain::semantics::{future_violations, status, FutureKind, SlaState};
use slamon_domain::sla::fmt_num;
use slamon_domain::{Sample, SlaEntry, UnixMillis};
use slamon_prometheus::{Credentials, TlsFiles};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::rest::AppState;

/// The alert name of a firing SLA.
pub const VIOLATED: &str = "SlamonSlaViolated";
/// The alert name of an SLA its forecast says will fire.
pub const PREDICTED: &str = "SlamonSlaViolationPredicted";
/// How long a resolved alert is still sent (Prometheus's `resolvedRetention`).
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);
/// The most alerts queued for one Alertmanager (Prometheus's default notification queue).
pub const QUEUE_CAPACITY: usize = 10_000;
/// The most alerts in one POST.
const BATCH: usize = 256;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The alert labels: name → value, sorted.
pub type AlertLabels = BTreeMap<String, String>;

/// Settings of the alerts to Alertmanager.
#[derive(Debug, Clone, clap::Args)]
#[group(id = "alerting")]
#[command(next_help_heading = "Alerts to Alertmanager")]
pub struct Settings {
    /// Alertmanager base URLs, separated by commas (e.g. `http://alertmanager:9093`); a
    /// `user:password@` in one is its basic authentication. None: no alerts are sent.
    #[arg(
        long = "alertmanager-url",
        env = "SLAMON_ALERTMANAGER_URL",
        value_delimiter = ',',
        hide_env_values = true,
        value_parser = alertmanager_url
    )]
    pub alertmanager_urls: Vec<String>,
    /// How often the SLA set is evaluated for alerts (a rule group's `interval`).
    #[arg(long, env = "SLAMON_ALERT_EVALUATION_INTERVAL", default_value = "30s", value_parser = slamon_backends::duration)]
    pub alert_evaluation_interval: Duration,
    /// The least time between two sends of the same alert (Prometheus's
    /// `--rules.alert.resend-delay`).
    #[arg(long, env = "SLAMON_ALERT_RESEND_DELAY", default_value = "1m", value_parser = slamon_backends::duration)]
    pub alert_resend_delay: Duration,
    /// Timeout of one POST to an Alertmanager.
    #[arg(long, env = "SLAMON_ALERTMANAGER_TIMEOUT", default_value = "10s", value_parser = slamon_backends::duration)]
    pub alertmanager_timeout: Duration,
    /// File of the bearer token sent to every Alertmanager (read again on every send).
    #[arg(long, env = "SLAMON_ALERTMANAGER_BEARER_TOKEN_FILE")]
    pub alertmanager_bearer_token_file: Option<std::path::PathBuf>,
    /// PEM file of CA certificates trusted for an `https` Alertmanager, beside the system's.
    #[arg(long, env = "SLAMON_ALERTMANAGER_CA_FILE")]
    pub alertmanager_ca_file: Option<std::path::PathBuf>,
    /// The URL people reach the SLA manager at (links in alerts); default
    /// `http://HOSTNAME:PORT` of its REST listener.
    #[arg(long, env = "SLAMON_EXTERNAL_URL")]
    pub external_url: Option<String>,
}

/// One item of `SLAMON_ALERTMANAGER_URL`, checked when the settings are read (before
/// anything starts): an http(s) URL with a host and no query or fragment; empty is none.
/// The errors never quote the value (it may hold a password).
fn alertmanager_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("an Alertmanager URL is http(s) with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an Alertmanager base URL takes no query string or fragment".into());
    }
    Ok(s.to_owned())
}

/// An alert as Alertmanager's API v2 takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its identity.
    pub labels: AlertLabels,
    /// Details that may change while it fires.
    pub annotations: BTreeMap<String, String>,
    /// When it fired.
    pub starts_at: UnixMillis,
    /// When it is resolved (in the past) or until when it holds unless re-sent.
    pub ends_at: UnixMillis,
    /// Where a person sees its source.
    pub generator_url: String,
}

impl Alert {
    /// The JSON object of `POST /api/v2/alerts`.
    pub fn to_json(&self) -> Value {
        json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts_at.to_string(),
            "endsAt": self.ends_at.to_string(),
            "generatorURL": self.generator_url,
        })
    }
}

/// An alert the current evaluation found active.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    /// Its identity.
    pub labels: AlertLabels,
    /// Its current annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it fired, when the data says; `None`: the evaluation that first found it.
    pub fired_at: Option<UnixMillis>,
    /// Where a person sees its source.
    pub generator_url: String,
}

/// The evaluation cadence.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Time between evaluations.
    pub interval: Duration,
    /// The least time between two sends of an alert.
    pub resend_delay: Duration,
}

struct Tracked {
    annotations: BTreeMap<String, String>,
    fired_at: UnixMillis,
    generator_url: String,
    last_sent: Option<UnixMillis>,
    resolved_at: Option<UnixMillis>,
}

/// The alerts of past evaluations: what fired, what was sent when, what resolved.
#[derive(Default)]
pub struct AlertBook {
    tracked: HashMap<AlertLabels, Tracked>,
}

impl AlertBook {
    /// Applies one evaluation at `now` that found `active` and returns the alerts to send:
    /// new and resolved ones at once, the others when their last send is at least the
    /// resend delay old; resolved ones are forgotten [`RESOLVED_RETENTION`] after.
    pub fn evaluate(&mut self, now: UnixMillis, active: Vec<Active>, cadence: Cadence) -> Vec<Alert> {
        let mut seen = std::collections::HashSet::with_capacity(active.len());
        for a in active {
            seen.insert(a.labels.clone());
            let fired_at = a.fired_at.unwrap_or(now).min(now);
            match self.tracked.get_mut(&a.labels) {
                Some(t) if t.resolved_at.is_none() => {
                    t.annotations = a.annotations;
                    t.generator_url = a.generator_url;
                    if a.fired_at.is_some() {
                        t.fired_at = fired_at;
                    }
                }
                // new, or firing again after a resolution: a new alert
                _ => {
                    let t = Tracked {
                        annotations: a.annotations,
                        fired_at,
                        generator_url: a.generator_url,
                        last_sent: None,
                        resolved_at: None,
                    };
                    self.tracked.insert(a.labels, t);
                }
            }
        }
        self.tracked.retain(|labels, t| {
            if t.resolved_at.is_none() && !seen.contains(labels) {
                t.resolved_at = Some(now);
            }
            t.resolved_at.is_none_or(|r| now.since(r) < RESOLVED_RETENTION)
        });
        let valid_for = 4 * cadence.resend_delay.max(cadence.interval);
        let mut out = Vec::new();
        for (labels, t) in &mut self.tracked {
            let due = match (t.last_sent, t.resolved_at) {
                (None, _) => true,
                (Some(sent), Some(resolved)) if resolved > sent => true,
                (Some(sent), _) => now.since(sent) >= cadence.resend_delay,
            };
            if !due {
                continue;
            }
            t.last_sent = Some(now);
            out.push(Alert {
                labels: labels.clone(),
                annotations: t.annotations.clone(),
                starts_at: t.fired_at,
                ends_at: t.resolved_at.unwrap_or(now + valid_for),
                generator_url: t.generator_url.clone(),
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

/// The alerts one SLA entry raises at `now`: [`VIOLATED`] when it is firing,
/// [`PREDICTED`] when the forecast makes a run that is not yet firing reach `for`.
pub fn entry_alerts(
    entry: &SlaEntry,
    samples: &[Sample],
    forecast: &[Sample],
    now: UnixMillis,
    lookback: Duration,
    absent_after: Duration,
    external_url: &str,
) -> Vec<Active> {
    let mut labels: AlertLabels = crate::exposition::entry_labels(entry).into_iter().collect();
    let range = format!("({}, {})", fmt_num(entry.range.min), fmt_num(entry.range.max));
    let metric = entry.labels.get(slamon_domain::NAME_LABEL).unwrap_or_default().to_owned();
    let generator_url = format!("{}/sla/{}", external_url.trim_end_matches('/'), entry.id());
    let for_span = Duration::from_secs(60 * u64::from(entry.for_minutes));
    let mut out = Vec::new();
    let st = status(entry, samples, now, lookback, absent_after);
    if st.state == SlaState::Firing {
        labels.insert("alertname".into(), VIOLATED.into());
        let annotations = BTreeMap::from([
            ("summary".to_owned(), format!("SLA of {metric} violated for more than {} min", entry.for_minutes)),
            ("description".to_owned(), st.description.clone()),
            ("range".to_owned(), range.clone()),
        ]);
        out.push(Active {
            labels: labels.clone(),
            annotations,
            fired_at: st.active_at.map(|a| a + for_span),
            generator_url: generator_url.clone(),
        });
    }
    let will_fire = future_violations(entry, samples, forecast, lookback)
        .into_iter()
        .filter(|v| matches!(v.kind, FutureKind::WillFire | FutureKind::PendingWillFire))
        .min_by_key(|v| v.run.start.millis());
    if let Some(v) = will_fire.filter(|_| st.state != SlaState::Firing) {
        labels.insert("alertname".into(), PREDICTED.into());
        let fires_at = v.run.start + for_span;
        let annotations = BTreeMap::from([
            ("summary".to_owned(), format!("SLA of {metric} predicted to be violated for {} min", entry.for_minutes)),
            ("description".to_owned(), format!("{}: forecast to fire at {fires_at}", v.kind.description())),
            ("predicted_fire_time".to_owned(), fires_at.to_string()),
            ("range".to_owned(), range),
        ]);
        out.push(Active { labels, annotations, fired_at: None, generator_url });
    }
    out
}

/// Per Alertmanager: alerts sent, failed sends, dropped alerts, queue length.
#[derive(Clone)]
pub struct NotifierMetrics {
    sent: IntCounterVec,
    errors: IntCounterVec,
    dropped: IntCounterVec,
    queue: IntGaugeVec,
    evaluation_failures: prometheus::IntCounter,
}

impl NotifierMetrics {
    /// Creates the metrics and registers them in `registry`.
    ///
    /// # Errors
    /// A metric of the same name is already registered.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let vec = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), &["alertmanager"])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let queue = IntGaugeVec::new(
            Opts::new("sla_manager_notifications_queue_length", "alerts waiting to be sent to the Alertmanager"),
            &["alertmanager"],
        )?;
        registry.register(Box::new(queue.clone()))?;
        let evaluation_failures = prometheus::IntCounter::new(
            "sla_manager_alert_evaluation_failures_total",
            "alert evaluations skipped because the read models could not be read",
        )?;
        registry.register(Box::new(evaluation_failures.clone()))?;
        Ok(Self {
            sent: vec("sla_manager_notifications_sent_total", "alerts the Alertmanager accepted")?,
            errors: vec("sla_manager_notifications_errors_total", "sends to the Alertmanager that failed")?,
            dropped: vec(
                "sla_manager_notifications_dropped_total",
                "alerts dropped: the queue was full, or the Alertmanager refused them as invalid",
            )?,
            queue,
            evaluation_failures,
        })
    }
}

/// The alerts waiting for one Alertmanager: the newest version of each, oldest first.
#[derive(Default)]
struct Queue {
    pending: HashMap<AlertLabels, (u64, Alert)>,
    next: u64,
}

impl Queue {
    /// Queues `alert`, replacing a queued version of it; returns how many were dropped to
    /// keep [`QUEUE_CAPACITY`].
    fn push(&mut self, alert: Alert) -> usize {
        self.next += 1;
        self.pending.insert(alert.labels.clone(), (self.next, alert));
        let over = self.pending.len().saturating_sub(QUEUE_CAPACITY);
        if over > 0 {
            let mut by_age: Vec<(u64, AlertLabels)> = self.pending.iter().map(|(l, (s, _))| (*s, l.clone())).collect();
            by_age.sort_unstable();
            for (_, labels) in by_age.into_iter().take(over) {
                self.pending.remove(&labels);
            }
        }
        over
    }

    /// Takes up to [`BATCH`] alerts, oldest first.
    fn take(&mut self) -> Vec<(u64, Alert)> {
        let mut seqs: Vec<(u64, AlertLabels)> = self.pending.iter().map(|(l, (s, _))| (*s, l.clone())).collect();
        seqs.sort_unstable();
        seqs.into_iter().take(BATCH).filter_map(|(_, l)| self.pending.remove(&l)).collect()
    }

    /// Puts back a batch that could not be sent, except alerts queued again since.
    fn put_back(&mut self, batch: Vec<(u64, Alert)>) {
        for (seq, alert) in batch {
            self.pending.entry(alert.labels.clone()).or_insert((seq, alert));
        }
    }
}

/// One Alertmanager and its queue.
struct Target {
    /// `…/api/v2/alerts`.
    endpoint: String,
    /// The URL as shown in logs and metrics (no password).
    shown: String,
    credentials: Credentials,
    queue: Mutex<Queue>,
    wake: Notify,
}

/// Why a send failed.
enum SendError {
    /// Worth retrying: unreachable, timeout, 5xx, 429.
    Retry(String),
    /// Alertmanager refused the alerts (4xx): retrying sends the same.
    Refused(String),
}

/// The senders of alerts to every configured Alertmanager.
pub struct Notifier {
    targets: Vec<Arc<Target>>,
    http: reqwest::Client,
    metrics: NotifierMetrics,
}

impl Notifier {
    /// A notifier for the Alertmanagers of `settings`; `None` when none is configured.
    ///
    /// # Errors
    /// A URL is not http(s), a URL holds credentials while a token file is given too, or
    /// the HTTP client cannot be built (an unreadable CA file).
    pub fn new(settings: &Settings, metrics: NotifierMetrics) -> Result<Option<Self>, String> {
        let urls: Vec<&str> = settings.alertmanager_urls.iter().map(|u| u.trim()).filter(|u| !u.is_empty()).collect();
        if urls.is_empty() {
            return Ok(None);
        }
        let bearer = slamon_backends::given_path(&settings.alertmanager_bearer_token_file);
        let mut targets = Vec::new();
        for raw in urls {
            let mut url = reqwest::Url::parse(raw).map_err(|e| {
                format!("SLAMON_ALERTMANAGER_URL: an item is not a URL ({e}; its value is not shown: it may hold a password)")
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err("SLAMON_ALERTMANAGER_URL: each item is an http(s) URL with a host".into());
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err("SLAMON_ALERTMANAGER_URL: a base URL takes no query string or fragment".into());
            }
            let credentials = match slamon_prometheus::credentials_in_url(&mut url) {
                Some(_) if bearer.is_some() => {
                    return Err(
                        "an Alertmanager URL holds a user and password, and a bearer token file is given too".into()
                    )
                }
                Some(basic) => basic,
                None => bearer.clone().map(Credentials::BearerFile).unwrap_or_default(),
            };
            let base = url.as_str().trim_end_matches('/').to_owned();
            targets.push(Arc::new(Target {
                endpoint: format!("{base}/api/v2/alerts"),
                shown: base,
                credentials,
                queue: Mutex::default(),
                wake: Notify::new(),
            }));
        }
        let tls = TlsFiles { ca_file: slamon_backends::given_path(&settings.alertmanager_ca_file), client_cert: None };
        let builder = reqwest::Client::builder().timeout(settings.alertmanager_timeout).no_proxy();
        // every series of every Alertmanager from the start, at 0
        for t in &targets {
            for vec in [&metrics.sent, &metrics.errors, &metrics.dropped] {
                vec.with_label_values(&[&t.shown]);
            }
            metrics.queue.with_label_values(&[&t.shown]).set(0);
        }
        let http = slamon_prometheus::tls_builder(builder, &tls)
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| format!("cannot build the Alertmanager client: {e}"))?;
        Ok(Some(Self { targets, http, metrics }))
    }

    /// Queues `alerts` for every Alertmanager and wakes the senders; never waits for them.
    pub fn send(&self, alerts: &[Alert]) {
        if alerts.is_empty() {
            return;
        }
        for t in &self.targets {
            let mut queue = t.queue.lock().expect("alert queue lock");
            let dropped: usize = alerts.iter().map(|a| queue.push(a.clone())).sum();
            self.metrics.queue.with_label_values(&[&t.shown]).set(queue.pending.len() as i64);
            drop(queue);
            if dropped > 0 {
                self.metrics.dropped.with_label_values(&[&t.shown]).inc_by(dropped as u64);
                tracing::warn!(alertmanager = %t.shown, dropped, "alert queue full: dropped the oldest alerts");
            }
            t.wake.notify_one();
        }
    }

    async fn post(&self, target: &Target, batch: &[(u64, Alert)]) -> Result<(), SendError> {
        let body = Value::Array(batch.iter().map(|(_, a)| a.to_json()).collect());
        let request = target
            .credentials
            .authorize(self.http.post(&target.endpoint).json(&body))
            .map_err(|e| SendError::Retry(e.to_string()))?;
        let res = request.send().await.map_err(|e| SendError::Retry(slamon_prometheus::with_causes(&e)))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = res.text().await.unwrap_or_default().chars().take(300).collect();
        let e = format!("HTTP {status}: {text}");
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 401 || status.as_u16() == 403 {
            Err(SendError::Retry(e))
        } else {
            Err(SendError::Refused(e))
        }
    }

    /// Sends what is queued for `target` until `cancel`, retrying with backoff.
    async fn run_target(self: Arc<Self>, target: Arc<Target>, cancel: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let batch = target.queue.lock().expect("alert queue lock").take();
            if batch.is_empty() {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = target.wake.notified() => continue,
                }
            }
            let n = batch.len() as u64;
            match self.post(&target, &batch).await {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    self.metrics.sent.with_label_values(&[&target.shown]).inc_by(n);
                    tracing::debug!(alertmanager = %target.shown, alerts = n, "alerts sent");
                }
                Err(SendError::Refused(e)) => {
                    self.metrics.errors.with_label_values(&[&target.shown]).inc();
                    self.metrics.dropped.with_label_values(&[&target.shown]).inc_by(n);
                    tracing::error!(alertmanager = %target.shown, alerts = n, error = %e, "Alertmanager refused the alerts: dropped");
                }
                Err(SendError::Retry(e)) => {
                    self.metrics.errors.with_label_values(&[&target.shown]).inc();
                    tracing::warn!(alertmanager = %target.shown, alerts = n, error = %e, retry_in = ?backoff, "cannot send alerts to Alertmanager");
                    target.queue.lock().expect("alert queue lock").put_back(batch);
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            let len = target.queue.lock().expect("alert queue lock").pending.len();
            self.metrics.queue.with_label_values(&[&target.shown]).set(len as i64);
        }
    }
}

/// `http://HOSTNAME:PORT`, the default external URL of a listener on `port`.
pub fn default_external_url(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("http://{host}:{port}")
}

/// Evaluates the SLA set every `cadence.interval` and sends its alerts through
/// `notifier` until `cancel`. A read-model failure skips that evaluation (nothing is
/// resolved for it).
pub async fn run(
    state: AppState,
    notifier: Notifier,
    cadence: Cadence,
    external_url: String,
    cancel: CancellationToken,
) {
    let notifier = Arc::new(notifier);
    for t in &notifier.targets {
        tokio::spawn(notifier.clone().run_target(t.clone(), cancel.clone()));
    }
    tracing::info!(
        alertmanagers = ?notifier.targets.iter().map(|t| t.shown.as_str()).collect::<Vec<_>>(),
        interval = ?cadence.interval,
        resend_delay = ?cadence.resend_delay,
        "sending SLA alerts to Alertmanager"
    );
    let mut book = AlertBook::default();
    let mut ticks = tokio::time::interval(cadence.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match evaluate(&state, &external_url).await {
            Ok((now, active)) => notifier.send(&book.evaluate(now, active, cadence)),
            Err(e) => {
                notifier.metrics.evaluation_failures.inc();
                tracing::warn!(error = %e, "alert evaluation skipped: the read models could not be read");
            }
        }
    }
}

/// The active alerts of the SLA set now; none without a set.
async fn evaluate(s: &AppState, external_url: &str) -> Result<(UnixMillis, Vec<Active>), slamon_web::ApiError> {
    let entries = match crate::rest::set_with_samples(s).await {
        Ok(e) => e,
        Err(slamon_web::ApiError::BadRequest(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let now = UnixMillis::now();
    let mut active = Vec::new();
    // (alerts are raised only by firing and predicted runs: when an SLA entered the set
    // does not change them)
    for (entry, _, samples) in &entries {
        let metric = slamon_web::db(s.db_timeout, s.store.metric(&entry.id())).await?;
        let (forecast, intervals) =
            metric.and_then(|m| m.prediction).map(|p| (p.points, p.intervals)).unwrap_or_default();
        let mut alerts = entry_alerts(entry, samples, &forecast, now, s.lookback, s.absent_after, external_url);
        // a predicted violation says how likely it is, when the forecast has intervals
        let probability = slamon_domain::semantics::breach_probability(entry, samples, &forecast, &intervals);
        for a in alerts.iter_mut().filter(|a| a.labels.get("alertname").is_some_and(|n| n == PREDICTED)) {
            if let Some(p) = probability {
                a.annotations.insert("probability".into(), format!("{p:.3}"));
            }
        }
        active.extend(alerts);
    }
    Ok((now, active))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn labels(name: &str) -> AlertLabels {
        BTreeMap::from([("alertname".to_owned(), VIOLATED.to_owned()), ("sla_metric".to_owned(), name.to_owned())])
    }

    fn active(name: &str, fired_at: Option<i64>) -> Active {
        Active {
            labels: labels(name),
            annotations: BTreeMap::from([("description".to_owned(), "d".to_owned())]),
            fired_at: fired_at.map(UnixMillis),
            generator_url: "http://x/sla/1".into(),
        }
    }

    const CADENCE: Cadence = Cadence { interval: Duration::from_secs(30), resend_delay: MIN };

    fn at(seconds: i64) -> UnixMillis {
        UnixMillis(1_000_000_000 + seconds * 1000)
    }

    #[test]
    fn a_firing_alert_is_sent_at_once_then_every_resend_delay_with_ends_at_four_periods_ahead() {
        let mut book = AlertBook::default();
        let fired = at(-120).millis();
        let sent = book.evaluate(at(0), vec![active("a", Some(fired))], CADENCE);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].starts_at, UnixMillis(fired));
        assert_eq!(sent[0].ends_at, at(240), "4 × max(resend delay 1m, interval 30s)");
        // 30 s later: not yet; 60 s after the last send: again (the first multiple of the
        // interval that is at least the resend delay)
        assert!(book.evaluate(at(30), vec![active("a", Some(fired))], CADENCE).is_empty());
        let again = book.evaluate(at(60), vec![active("a", Some(fired))], CADENCE);
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].starts_at, again[0].ends_at), (UnixMillis(fired), at(300)));
        assert!(book.evaluate(at(90), vec![active("a", Some(fired))], CADENCE).is_empty());
    }

    #[test]
    fn a_resolved_alert_is_sent_at_once_with_ends_at_the_resolution_and_again_for_15_minutes() {
        let mut book = AlertBook::default();
        book.evaluate(at(0), vec![active("a", None)], CADENCE);
        // resolved 30 s after the last send: sent now, not a resend delay later
        let resolved = book.evaluate(at(30), vec![], CADENCE);
        assert_eq!(resolved.len(), 1);
        assert_eq!((resolved[0].starts_at, resolved[0].ends_at), (at(0), at(30)));
        assert!(book.evaluate(at(60), vec![], CADENCE).is_empty());
        let resent = book.evaluate(at(90), vec![], CADENCE);
        assert_eq!(resent.len(), 1);
        assert_eq!(resent[0].ends_at, at(30), "endsAt stays the resolution time");
        // every minute until 15 min after the resolution, then never
        let mut sends = 2;
        for s in (120..=30 + 15 * 60 + 120).step_by(30) {
            sends += book.evaluate(at(s), vec![], CADENCE).len();
        }
        assert_eq!(sends, 15, "resolved at 30 s: sent at 30, 90, …, 870 s");
        assert!(book.tracked.is_empty());
    }

    #[test]
    fn an_alert_that_fires_again_after_resolving_is_a_new_alert_sent_at_once() {
        let mut book = AlertBook::default();
        book.evaluate(at(0), vec![active("a", None)], CADENCE);
        book.evaluate(at(30), vec![], CADENCE);
        let refired = book.evaluate(at(45), vec![active("a", None)], CADENCE);
        assert_eq!(refired.len(), 1);
        assert_eq!((refired[0].starts_at, refired[0].ends_at), (at(45), at(45 + 240)));
        // it is no longer resolved: nothing more to send about the old one
        assert!(book.evaluate(at(60), vec![active("a", None)], CADENCE).is_empty());
    }

    #[test]
    fn annotations_follow_the_latest_evaluation_and_alerts_are_independent() {
        let mut book = AlertBook::default();
        book.evaluate(at(0), vec![active("a", None)], CADENCE);
        let mut changed = active("a", None);
        changed.annotations.insert("description".into(), "new".into());
        let sent = book.evaluate(at(30), vec![changed.clone(), active("b", None)], CADENCE);
        assert_eq!(sent.len(), 1, "only b is new: {sent:?}");
        assert_eq!(sent[0].labels["sla_metric"], "b");
        let resent = book.evaluate(at(60), vec![changed, active("b", None)], CADENCE);
        assert_eq!(resent[0].annotations["description"], "new");
        assert_eq!(resent[0].starts_at, at(0), "the evaluation that first found it");
    }

    #[test]
    fn every_alertmanagers_counters_exist_from_the_start() {
        let registry = Registry::new();
        let settings = Settings {
            alertmanager_urls: vec!["http://am-1:9093".into(), "http://user:secret@am-2:9093/prefix/".into()],
            alert_evaluation_interval: Duration::from_secs(30),
            alert_resend_delay: Duration::from_secs(60),
            alertmanager_timeout: Duration::from_secs(10),
            alertmanager_bearer_token_file: None,
            alertmanager_ca_file: None,
            external_url: None,
        };
        let notifier = Notifier::new(&settings, NotifierMetrics::new(&registry).unwrap()).unwrap().unwrap();
        assert_eq!(notifier.targets[1].endpoint, "http://am-2:9093/prefix/api/v2/alerts", "credentials taken out");
        let text = slamon_web::render(&registry);
        for family in ["sent_total", "errors_total", "dropped_total", "queue_length"] {
            for am in ["http://am-1:9093", "http://am-2:9093/prefix"] {
                let line = format!("sla_manager_notifications_{family}{{alertmanager=\"{am}\"}} 0");
                assert!(text.contains(&line), "{line} missing: {text}");
            }
        }
        assert!(!text.contains("secret"));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_a_newer_version_replaces_a_queued_one() {
        let mut q = Queue::default();
        let alert = |i: usize, desc: &str| Alert {
            labels: labels(&i.to_string()),
            annotations: BTreeMap::from([("description".to_owned(), desc.to_owned())]),
            starts_at: at(0),
            ends_at: at(1),
            generator_url: String::new(),
        };
        for i in 0..QUEUE_CAPACITY {
            assert_eq!(q.push(alert(i, "old")), 0);
        }
        assert_eq!(q.push(alert(5, "new")), 0, "a newer version takes its place");
        assert_eq!(q.push(alert(QUEUE_CAPACITY, "x")), 1);
        assert!(!q.pending.contains_key(&labels("0")), "the oldest was dropped");
        let batch = q.take();
        assert_eq!(batch.len(), BATCH);
        assert_eq!(batch[0].1.labels, labels("1"));
        assert!(batch.iter().all(|(_, a)| a.labels != labels("5")), "5 was queued again last");
        // a failed batch goes back, except what was queued again meanwhile
        q.push(alert(1, "newer"));
        q.put_back(batch);
        assert_eq!(q.pending[&labels("1")].1.annotations["description"], "newer");
        assert_eq!(q.pending.len(), QUEUE_CAPACITY);
    }

    fn sla(for_minutes: u32) -> SlaEntry {
        let labels: slamon_domain::Labels =
            [("__name__", "latency"), ("job", "api"), ("alertname", "theirs")].into_iter().collect();
        SlaEntry { labels, range: slamon_domain::SlaRange { min: 0.0, max: 10.0 }, for_minutes }
    }

    /// One sample a minute, the last one at `now`.
    fn minutes(now: UnixMillis, values: &[f64]) -> Vec<Sample> {
        let n = values.len() as i64;
        values.iter().enumerate().map(|(i, v)| Sample::new(now.millis() - (n - 1 - i as i64) * 60_000, *v)).collect()
    }

    fn alerts(for_minutes: u32, observed: &[f64], forecast: &[f64]) -> Vec<Active> {
        let now = at(0);
        let samples = minutes(now, observed);
        let future: Vec<Sample> =
            forecast.iter().enumerate().map(|(i, v)| Sample::new(now.millis() + (i as i64 + 1) * 60_000, *v)).collect();
        entry_alerts(&sla(for_minutes), &samples, &future, now, MIN * 5, MIN * 10, "http://slamon:5001/")
    }

    #[test]
    fn a_firing_sla_is_one_violated_alert_that_fired_for_after_its_run_started() {
        let found = alerts(2, &[5.0, 20.0, 21.0, 22.0, 23.0], &[30.0; 10]);
        assert_eq!(found.len(), 1, "firing, so no prediction besides: {found:?}");
        let a = &found[0];
        assert_eq!(a.labels["alertname"], VIOLATED);
        assert_eq!(a.labels["sla_metric"], "latency");
        assert_eq!(a.labels["job"], "api");
        assert_eq!(a.labels["exported_alertname"], "theirs", "a series label never replaces ours");
        assert_eq!(a.labels["sla_id"], sla(2).id().to_string());
        assert!(!a.labels.contains_key("__name__"));
        // the run started 3 min ago; it fired 2 min (for) later
        assert_eq!(a.fired_at, Some(at(-60)));
        assert!(a.annotations["description"].starts_with("Service level agreement violated for more than 2 min"));
        assert_eq!(a.annotations["range"], "(0, 10)");
        assert_eq!(a.generator_url, format!("http://slamon:5001/sla/{}", sla(2).id()));
    }

    #[test]
    fn a_forecast_that_fires_is_a_predicted_alert_and_a_pending_or_passing_one_is_none() {
        // pending now, the forecast keeps it violating past for
        let found = alerts(3, &[5.0, 5.0, 20.0], &[20.0, 20.0, 20.0, 5.0]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].labels["alertname"], PREDICTED);
        assert_eq!(found[0].fired_at, None);
        let expected = UnixMillis(at(0).millis() + 3 * 60_000);
        assert_eq!(found[0].annotations["predicted_fire_time"], expected.to_string());
        assert!(found[0].annotations["description"].starts_with("Was pending, will fire"), "{found:?}");
        // inside the range now, the forecast leaves it for long enough
        let later = alerts(2, &[5.0, 5.0], &[5.0, 11.0, 12.0, 13.0, 5.0]);
        assert_eq!(later.len(), 1, "{later:?}");
        assert!(later[0].annotations["description"].starts_with("Will fire"));
        // pending now and the forecast returns into the range before for: nothing
        assert!(alerts(3, &[5.0, 20.0], &[20.0, 5.0, 5.0]).is_empty());
        // a short excursion in the forecast: nothing
        assert!(alerts(5, &[5.0, 5.0], &[20.0, 20.0, 5.0, 5.0]).is_empty());
    }
}
