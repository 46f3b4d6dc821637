//! The read models in MongoDB (SPEC §4): collections `metrics`, `sla_sets` and
//! `sla_samples`, each document the serialised view with `_id` = the metric id as an
//! ObjectId (`"current"` for the SLA set). Every document carries the log position of
//! the last event applied (`applied`), so the projection stays idempotent. Writes are
//! one bulk write of upserts per batch; every call is bounded by the client's server
//! selection and socket timeouts, so a database that is down is an `Unavailable` error
//! within seconds, never a hang.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, oid::ObjectId, Bson, Document as BsonDocument};
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection as MongoCollection, Database, IndexModel};
use slamon_domain::{
    Collection, DocKey, Document, Labels, MetricFilter, MetricId, MetricView, PortError, PortResult, ReadModelStore,
    Rebuild, RebuildableStore, SeriesItem, NAME_LABEL, SLA_SET_VERSION_ID_PREFIX,
};

/// Ids per `find` of a `load`, and such finds in flight at once.
const LOAD_CHUNK: usize = 100;
const LOAD_CONCURRENCY: usize = 4;

/// How the store reaches MongoDB.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// e.g. `mongodb://127.0.0.1:27017`
    pub uri: String,
    pub database: String,
    /// Bound of server selection, connection and each operation.
    pub timeout: Duration,
    /// A user and password given apart from the URI (a password kept in a file, so it is
    /// written once and never in a connection string); none: the URI's own, if any.
    pub credential: Option<MongoCredential>,
}

/// A MongoDB user and its password, authenticated against the URI's `authSource`
/// (`admin` when the URI names none).
#[derive(Clone)]
pub struct MongoCredential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for MongoCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoCredential").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// Prefix of the collection names (`rebuild_` while a replay rebuilds them).
    prefix: String,
    /// Documents that could not be decoded (skipped).
    undecodable: Arc<AtomicU64>,
    /// The longest a store call may take ([`OPERATION_TIMEOUT_FACTOR`] × the timeout).
    operation_timeout: Duration,
}

/// A store call may take this many times [`MongoConfig::timeout`] (a bulk write of a large
/// batch is slower than the server selection the timeout bounds).
pub const OPERATION_TIMEOUT_FACTOR: u32 = 10;

/// The documents of `collection` with these ids.
async fn find_ids(collection: MongoCollection<BsonDocument>, ids: Vec<Bson>) -> PortResult<Vec<BsonDocument>> {
    collection.find(doc! {"_id": {"$in": ids}}).await.map_err(unavailable)?.try_collect().await.map_err(unavailable)
}

fn unavailable(e: mongodb::error::Error) -> PortError {
    PortError::Unavailable(format!("mongodb: {e}"))
}

fn invalid(e: impl std::fmt::Display) -> PortError {
    PortError::Invalid(format!("mongodb document: {e}"))
}

/// The `_id` of a document: the metric id as an ObjectId, or the SLA set's name.
fn doc_id(key: &DocKey) -> PortResult<Bson> {
    Ok(match key {
        DocKey::SlaSet | DocKey::SlaSetVersion(_) => Bson::String(key.doc_id()),
        DocKey::Metric(id) | DocKey::SlaSamples(id) => Bson::ObjectId(ObjectId::from_bytes(id.bytes())),
    })
}

fn to_bson(doc: &Document) -> PortResult<BsonDocument> {
    let mut out = match doc {
        Document::Metric(m) => mongodb::bson::to_document(m),
        Document::SlaSet(s) => mongodb::bson::to_document(s),
        Document::SlaSamples(s) => mongodb::bson::to_document(s),
        Document::SlaSetVersion(v) => mongodb::bson::to_document(v),
    }
    .map_err(invalid)?;
    out.insert("_id", doc_id(&doc.key())?);
    Ok(out)
}

impl MongoStore {
    /// The document, or `None` (counted and logged with its `_id`) when it cannot be decoded.
    fn decode(&self, collection: Collection, doc: BsonDocument) -> Option<Document> {
        let id = doc.get("_id").map(ToString::to_string).unwrap_or_default();
        match from_bson(collection, doc) {
            Ok(doc) => Some(doc),
            Err(e) => {
                self.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(collection = collection.name(), id, reason = %e, "undecodable read-model document skipped");
                None
            }
        }
    }
}

fn from_bson(collection: Collection, mut doc: BsonDocument) -> PortResult<Document> {
    let id = doc.remove("_id");
    let is_version = matches!(&id, Some(Bson::String(id)) if id.starts_with(SLA_SET_VERSION_ID_PREFIX));
    Ok(match collection {
        Collection::Metrics => Document::Metric(mongodb::bson::from_document(doc).map_err(invalid)?),
        Collection::SlaSets if is_version => {
            Document::SlaSetVersion(mongodb::bson::from_document(doc).map_err(invalid)?)
        }
        Collection::SlaSets => Document::SlaSet(mongodb::bson::from_document(doc).map_err(invalid)?),
        Collection::SlaSamples => Document::SlaSamples(mongodb::bson::from_document(doc).map_err(invalid)?),
    })
}

/// The driver's options for `config`: its timeouts, and [`MongoConfig::credential`] in
/// place of the URI's user and password (keeping the URI's `authSource`, else `admin`).
///
/// # Errors
/// [`PortError::Other`] when the URI is not a MongoDB connection string.
async fn client_options(config: &MongoConfig) -> PortResult<ClientOptions> {
    let mut options =
        ClientOptions::parse(&config.uri).await.map_err(|e| PortError::Other(format!("invalid MongoDB URI: {e}")))?;
    options.server_selection_timeout = Some(config.timeout);
    options.connect_timeout = Some(config.timeout);
    options.app_name = Some("slamon".into());
    if let Some(given) = &config.credential {
        // the driver keeps a URI's authSource only beside a user in the URI
        let source = options
            .credential
            .take()
            .and_then(|c| c.source)
            .or_else(|| uri_option(&config.uri, "authSource"))
            .unwrap_or_else(|| "admin".into());
        options.credential = Some(
            mongodb::options::Credential::builder()
                .username(given.username.clone())
                .password(given.password.clone())
                .source(source)
                .build(),
        );
    }
    Ok(options)
}

/// The value of option `name` (case-insensitive, as MongoDB reads them) in a
/// connection string's query.
fn uri_option(uri: &str, name: &str) -> Option<String> {
    let (_, query) = uri.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.eq_ignore_ascii_case(name).then(|| value.to_owned())
    })
}

impl MongoStore {
    /// Connects (lazily: an unreachable server fails the first call, not this one) and
    /// creates the indexes the queries need when the server is reachable.
    ///
    /// # Errors
    /// [`PortError::Other`] when the URI is not a MongoDB connection string.
    pub async fn connect(config: &MongoConfig) -> PortResult<Self> {
        Self::connect_with(config, None).await
    }

    /// [`MongoStore::connect`], telling `monitor` every command the driver sends (tests).
    async fn connect_with(config: &MongoConfig, monitor: Option<EventHandler<CommandEvent>>) -> PortResult<Self> {
        let mut options = client_options(config).await?;
        options.command_event_handler = monitor;
        let client = Client::with_options(options).map_err(unavailable)?;
        let db = client.database(&config.database);
        let operation_timeout = config.timeout * OPERATION_TIMEOUT_FACTOR;
        Ok(Self { client, db, prefix: String::new(), undecodable: Arc::default(), operation_timeout })
    }

    /// Checks that the server is a MongoDB slamon supports (6.0 or later: wire version
    /// [`MIN_WIRE_VERSION`] or more) and returns its wire version.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the server cannot be reached; [`PortError::Other`]
    /// when it is older than MongoDB 6.0, saying so.
    pub async fn check_server(&self) -> PortResult<i64> {
        let hello = self.db.run_command(doc! {"hello": 1}).await.map_err(unavailable)?;
        let wire = match hello.get("maxWireVersion") {
            Some(Bson::Int32(v)) => i64::from(*v),
            Some(Bson::Int64(v)) => *v,
            _ => return Err(PortError::Other("the MongoDB server did not tell its wire version".into())),
        };
        if wire < MIN_WIRE_VERSION {
            return Err(PortError::Other(format!(
                "the MongoDB server speaks wire version {wire}, older than MongoDB 6.0 (wire version {MIN_WIRE_VERSION}); slamon supports MongoDB 6.0, 7.0 and 8.0"
            )));
        }
        Ok(wire)
    }

    /// Creates the indexes (idempotent).
    pub async fn ensure_indexes(&self) -> PortResult<()> {
        let metrics = self.raw(Collection::Metrics);
        for keys in [doc! {"labels.__name__": 1, "removed": 1}, doc! {"removed": 1}] {
            metrics.create_index(IndexModel::builder().keys(keys).build()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    fn raw(&self, c: Collection) -> MongoCollection<BsonDocument> {
        self.db.collection(&format!("{}{}", self.prefix, c.name()))
    }

    /// The same database with collection names prefixed by `prefix`: where a replay
    /// rebuilds the read models next to the live ones.
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self { prefix: prefix.to_owned(), ..self.clone() }
    }

    /// Drops this store's collections.
    pub async fn drop_collections(&self) -> PortResult<()> {
        for c in Collection::ALL {
            self.raw(c).drop().await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// Replaces this store's collections with `rebuilt`'s (renames with `dropTarget`,
    /// collection by collection).
    pub async fn swap_in(&self, rebuilt: &MongoStore) -> PortResult<()> {
        let admin = self.client.database("admin");
        for c in Collection::ALL {
            let from = rebuilt.raw(c).namespace();
            let to = self.raw(c).namespace();
            let exists = rebuilt.db.list_collection_names().await.map_err(unavailable)?.contains(&from.coll);
            if !exists {
                self.raw(c).drop().await.map_err(unavailable)?;
                continue;
            }
            admin
                .run_command(doc! {"renameCollection": from.to_string(), "to": to.to_string(), "dropTarget": true})
                .await
                .map_err(unavailable)?;
        }
        self.ensure_indexes().await
    }
}

/// MongoDB 6.0's wire version: the oldest server slamon supports.
pub const MIN_WIRE_VERSION: i64 = 17;
/// The largest `update` command slamon sends (MongoDB takes 16 MiB per command document).
const MAX_COMMAND_BYTES: usize = 8 << 20;

impl MongoStore {
    /// One ordered `update` command of `updates` (upserts) on collection `name`.
    async fn update(&self, name: &str, updates: Vec<BsonDocument>) -> PortResult<()> {
        let reply =
            self.db.run_command(doc! {"update": name, "updates": updates, "ordered": true}).await.map_err(|e| {
                match refused_for_good(&e) {
                    true => PortError::Invalid(format!("mongodb update of {name}: {e}")),
                    false => PortError::Unavailable(format!("mongodb update of {name}: {e}")),
                }
            })?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            if let Some(first) = errors.first() {
                return Err(PortError::Invalid(format!("mongodb update of {name}: {first}")));
            }
        }
        if let Ok(concern) = reply.get_document("writeConcernError") {
            return Err(PortError::Unavailable(format!("mongodb update of {name}: {concern}")));
        }
        Ok(())
    }
}

/// MongoDB's largest document (BSON), 16 MiB.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Error codes with which a server refuses a write whatever the retries, all about the
/// document itself: too large (BSONObjectTooLarge 10334, and 17419/17420 after an
/// update), a field name it rejects (EmptyFieldName 56, DottedFieldName 57,
/// DollarPrefixedFieldName 52), an invalid value (BadValue 2, InvalidBSON 22).
const REFUSED_FOR_GOOD: [i32; 8] = [2, 22, 52, 56, 57, 10334, 17419, 17420];

/// Whether `e` is the server refusing the write for good (see [`REFUSED_FOR_GOOD`]),
/// or the driver refusing to send it (a command too large, a value it cannot encode);
/// anything else (network, elections, timeouts, auth) is worth a retry.
fn refused_for_good(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::Command(c) => REFUSED_FOR_GOOD.contains(&c.code),
        ErrorKind::InvalidArgument { .. } | ErrorKind::BsonSerialization(_) => true,
        _ => false,
    }
}

/// The collections a replay rebuilds into, beside the live ones.
const REBUILD_PREFIX: &str = "rebuild_";

/// A rebuild of a [`MongoStore`] into `rebuild_`-prefixed collections.
struct MongoRebuild {
    live: MongoStore,
    target: MongoStore,
}

#[async_trait]
impl RebuildableStore for MongoStore {
    async fn begin_rebuild(&self) -> PortResult<Box<dyn Rebuild>> {
        let target = self.with_prefix(&format!("{REBUILD_PREFIX}{}", self.prefix));
        target.drop_collections().await?;
        Ok(Box::new(MongoRebuild { live: self.clone(), target }))
    }
}

#[async_trait]
impl Rebuild for MongoRebuild {
    fn target(&self) -> &dyn ReadModelStore {
        &self.target
    }

    async fn swap_in(self: Box<Self>) -> PortResult<()> {
        self.live.swap_in(&self.target).await
    }

    async fn discard(self: Box<Self>) -> PortResult<()> {
        self.target.drop_collections().await
    }
}

impl MongoStore {
    /// Drops the database (tests, replay into a fresh database).
    pub async fn drop_database(&self) -> PortResult<()> {
        self.db.drop().await.map_err(unavailable)
    }
}

impl MongoStore {
    /// The query of `filter` (without paging); `None` when it can match nothing.
    fn metrics_query(filter: &MetricFilter) -> Option<BsonDocument> {
        let mut query = doc! {"removed": false};
        if let Some(after) = filter.after {
            query.insert("_id", doc! {"$gt": ObjectId::from_bytes(after.bytes())});
        }
        if let Some(name) = &filter.name {
            query.insert(format!("labels.{NAME_LABEL}"), name.clone());
        }
        for (label, value) in &filter.matchers {
            // label names are [a-zA-Z_][a-zA-Z0-9_]*: safe as a field path; others match nothing
            if !label.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return None;
            }
            // `label=""`: the series without the label, as in Prometheus (empty labels are dropped)
            let condition =
                if value.is_empty() { Bson::Document(doc! {"$exists": false}) } else { value.clone().into() };
            query.insert(format!("labels.{label}"), condition);
        }
        Some(query)
    }

    async fn series_now(&self, filter: &MetricFilter) -> PortResult<Vec<SeriesItem>> {
        let Some(query) = Self::metrics_query(filter) else { return Ok(Vec::new()) };
        if filter.limit == Some(0) {
            return Ok(Vec::new());
        }
        // ids and labels only: the statistics, forecast and metadata stay on the server
        let collection = self.raw(Collection::Metrics);
        let mut find = collection
            .find(query)
            .projection(doc! {"_id": 1, "labels": 1})
            .sort(doc! {"_id": 1})
            .skip(filter.offset as u64);
        if let Some(limit) = filter.limit {
            find = find.limit(limit as i64);
        }
        let docs: Vec<BsonDocument> = find.await.map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            let (Ok(id), Some(Bson::Document(labels))) = (d.get_object_id("_id"), d.get("labels")) else { continue };
            match mongodb::bson::from_document::<Labels>(labels.clone()) {
                Ok(labels) => out.push(SeriesItem { id: MetricId::from_bytes(id.bytes()), labels }),
                Err(e) => {
                    self.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(id = %id, reason = %e, "undecodable labels of a metric skipped");
                }
            }
        }
        Ok(out)
    }

    async fn metrics_now(&self, filter: &MetricFilter) -> PortResult<Vec<MetricView>> {
        let Some(query) = Self::metrics_query(filter) else { return Ok(Vec::new()) };
        let collection = self.raw(Collection::Metrics);
        let mut find = collection.find(query).sort(doc! {"_id": 1}).skip(filter.offset as u64);
        if let Some(limit) = filter.limit {
            if limit == 0 {
                return Ok(Vec::new());
            }
            find = find.limit(limit as i64);
        }
        let docs: Vec<BsonDocument> = find.await.map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        Ok(docs
            .into_iter()
            .filter_map(|d| match self.decode(Collection::Metrics, d)? {
                Document::Metric(m) => Some(m),
                _ => None,
            })
            .collect())
    }

    /// Every document of a collection, in `_id` order.
    async fn all_now(&self, collection: Collection) -> PortResult<Vec<Document>> {
        let cursor = self.raw(collection).find(doc! {}).sort(doc! {"_id": 1}).await.map_err(unavailable)?;
        let docs: Vec<BsonDocument> = cursor.try_collect().await.map_err(unavailable)?;
        Ok(docs.into_iter().filter_map(|d| self.decode(collection, d)).collect())
    }

    async fn load_now(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        let mut out = vec![None; keys.len()];
        for collection in Collection::ALL {
            let mut wanted: HashMap<String, usize> = HashMap::new();
            let mut ids: Vec<Bson> = Vec::new();
            for (i, k) in keys.iter().enumerate().filter(|(_, k)| k.collection() == collection) {
                let id = doc_id(k)?;
                wanted.insert(id.to_string(), i);
                ids.push(id);
            }
            // `$in` lists of a bounded length, a few at a time: servers answer a long
            // `$in` much more slowly than several short ones (SecantusDB 7× at 1 000 ids)
            let chunks: Vec<Vec<Bson>> = ids.chunks(LOAD_CHUNK).map(<[Bson]>::to_vec).collect();
            let found: Vec<Vec<BsonDocument>> = futures::stream::iter(chunks)
                .map(|chunk| find_ids(self.raw(collection), chunk))
                .buffer_unordered(LOAD_CONCURRENCY)
                .try_collect()
                .await?;
            for d in found.into_iter().flatten() {
                let at = d.get("_id").and_then(|id| wanted.get(&id.to_string()).copied());
                if let Some(i) = at {
                    out[i] = self.decode(collection, d);
                }
            }
        }
        Ok(out)
    }

    /// Upserts with one `update` command per collection (many statements, ordered), which
    /// every MongoDB since 2.6 has: the `bulkWrite` command exists only from 8.0. Commands
    /// stay under [`MAX_COMMAND_BYTES`].
    async fn write_now(&self, docs: Vec<Document>) -> PortResult<()> {
        let mut by_collection: BTreeMap<Collection, Vec<BsonDocument>> = BTreeMap::new();
        for d in &docs {
            let key = d.key();
            by_collection.entry(key.collection()).or_default().push(doc! {
                "q": {"_id": doc_id(&key)?},
                "u": to_bson(d)?,
                "upsert": true,
            });
        }
        for (collection, updates) in by_collection {
            let name = self.raw(collection).name().to_owned();
            let mut batch: Vec<BsonDocument> = Vec::new();
            let mut bytes = 0;
            for update in updates {
                let size = mongodb::bson::to_vec(&update).map_err(invalid)?.len();
                if size > MAX_DOCUMENT_BYTES {
                    return Err(PortError::Invalid(format!(
                        "a {} document of {size} bytes is over MongoDB's {MAX_DOCUMENT_BYTES}-byte limit",
                        collection.name()
                    )));
                }
                if !batch.is_empty() && bytes + size > MAX_COMMAND_BYTES {
                    self.update(&name, std::mem::take(&mut batch)).await?;
                    bytes = 0;
                }
                bytes += size;
                batch.push(update);
            }
            if !batch.is_empty() {
                self.update(&name, batch).await?;
            }
        }
        Ok(())
    }

    /// `call`, failed as [`PortError::Unavailable`] when it takes longer than the
    /// operation deadline: a connection that a network drops without a reset would
    /// otherwise hold a write for as long as TCP keeps it (about 15 minutes).
    async fn bounded<T>(&self, what: &str, call: impl std::future::Future<Output = PortResult<T>>) -> PortResult<T> {
        match tokio::time::timeout(self.operation_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(PortError::Unavailable(format!(
                "mongodb {what}: no answer within {:?} (the connection is dropped and retried)",
                self.operation_timeout
            ))),
        }
    }
}

#[async_trait]
impl ReadModelStore for MongoStore {
    async fn metrics(&self, filter: &MetricFilter) -> PortResult<Vec<MetricView>> {
        self.bounded("list", self.metrics_now(filter)).await
    }

    async fn series(&self, filter: &MetricFilter) -> PortResult<Vec<SeriesItem>> {
        self.bounded("list", self.series_now(filter)).await
    }

    async fn load(&self, keys: &[DocKey]) -> PortResult<Vec<Option<Document>>> {
        self.bounded("load", self.load_now(keys)).await
    }

    async fn write(&self, docs: Vec<Document>) -> PortResult<()> {
        self.bounded("write", self.write_now(docs)).await
    }

    async fn all(&self, collection: Collection) -> PortResult<Vec<Document>> {
        self.bounded("read", self.all_now(collection)).await
    }

    fn undecodable_documents(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_document_over_16_mib_is_refused_for_good_before_it_is_sent() {
        // no server at this address: the size is checked before anything is sent
        let config = MongoConfig {
            uri: "mongodb://127.0.0.1:9".into(),
            database: "x".into(),
            timeout: Duration::from_millis(300),
            credential: None,
        };
        let store = MongoStore::connect(&config).await.unwrap();
        let labels: slamon_domain::Labels = [("__name__", "huge")].into_iter().collect();
        let samples = (0..500_000).map(|i| slamon_domain::Sample::new(i, i as f64)).collect();
        let view = slamon_domain::SlaSamplesView {
            id: labels.id(),
            labels,
            samples,
            scoring: Default::default(),
            applied: slamon_domain::Position::new(0, 0),
        };
        let e = store.write(vec![Document::SlaSamples(view)]).await.unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert!(e.to_string().contains("16777216-byte limit"), "{e}");
    }

    #[tokio::test]
    async fn a_credential_given_apart_replaces_the_uris_and_keeps_its_auth_source() {
        let config = |uri: &str, credential: Option<MongoCredential>| MongoConfig {
            uri: uri.into(),
            database: "x".into(),
            timeout: Duration::from_secs(1),
            credential,
        };
        let given = MongoCredential { username: "slamon".into(), password: "p@ss:word/".into() };
        let options = client_options(&config("mongodb://m:27017/?authSource=ops", Some(given.clone()))).await.unwrap();
        let c = options.credential.unwrap();
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("slamon"), Some("p@ss:word/")));
        assert_eq!(c.source.as_deref(), Some("ops"));
        let c = client_options(&config("mongodb://old:old@m:27017", Some(given.clone())))
            .await
            .unwrap()
            .credential
            .unwrap();
        assert_eq!((c.username.as_deref(), c.source.as_deref()), (Some("slamon"), Some("admin")));
        // none given: the URI's own
        let c = client_options(&config("mongodb://u:p@m:27017", None)).await.unwrap().credential.unwrap();
        assert_eq!(c.username.as_deref(), Some("u"));
        assert!(client_options(&config("mongodb://m:27017", None)).await.unwrap().credential.is_none());
        assert!(!format!("{given:?}").contains("p@ss"), "the password is redacted");
    }

    /// MongoDB (or SecantusDB) at `MONGODB_URI`, default `mongodb://127.0.0.1:27017`.
    /// Without one the test is skipped locally and fails in CI.
    async fn store() -> Option<MongoStore> {
        let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
        let config = MongoConfig {
            uri: uri.clone(),
            database: format!("slamon_test_{}", uuid::Uuid::now_v7().simple()),
            timeout: Duration::from_secs(3),
            credential: None,
        };
        let store = MongoStore::connect(&config).await.expect("client");
        match store.ensure_indexes().await {
            Ok(()) => Some(store),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("SKIPPED: no MongoDB at {uri}: {e}");
                None
            }
            Err(e) => panic!("CI=true: MongoDB must be running at {uri} (scripts/services.sh start): {e}"),
        }
    }

    /// Every command MongoDB 6.0 has that the adapter may send: the oldest server slamon
    /// supports (<https://www.mongodb.com/docs/v6.0/reference/command/>).
    const MONGODB_6_COMMANDS: &[&str] = &[
        "hello",
        "isMaster",
        "ismaster",
        "ping",
        "buildInfo",
        "find",
        "getMore",
        "killCursors",
        "insert",
        "update",
        "delete",
        "aggregate",
        "count",
        "createIndexes",
        "listIndexes",
        "dropIndexes",
        "create",
        "drop",
        "dropDatabase",
        "listCollections",
        "renameCollection",
        "endSessions",
    ];

    /// The store suite, every command the driver sends recorded: each one exists in
    /// MongoDB 6.0 (the `bulkWrite` command of 8.0 does not).
    #[tokio::test(flavor = "multi_thread")]
    async fn every_command_sent_exists_in_mongodb_6() {
        let Some(plain) = store().await else { return };
        let sent = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let record = sent.clone();
        let monitor = EventHandler::callback(move |event: CommandEvent| {
            if let CommandEvent::Started(started) = event {
                record.lock().unwrap().insert(started.command_name);
            }
        });
        plain.drop_database().await.unwrap();
        // each promise on a database of its own, every command recorded
        let fresh = || async {
            let config = MongoConfig {
                uri: std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into()),
                database: format!("slamon_test_{}", uuid::Uuid::now_v7().simple()),
                timeout: Duration::from_secs(3),
                credential: None,
            };
            let store = MongoStore::connect_with(&config, Some(monitor.clone())).await.unwrap();
            assert!(store.check_server().await.unwrap() >= MIN_WIRE_VERSION);
            store.ensure_indexes().await.unwrap();
            store
        };
        use slamon_domain::suite::store as promise;
        let stores = [fresh().await, fresh().await, fresh().await, fresh().await, fresh().await];
        promise::round_trips_every_collection(&stores[0]).await;
        promise::loads_a_batch_in_key_order(&stores[1]).await;
        promise::lists_metrics_sorted_filtered_and_paged(&stores[2]).await;
        promise::a_swapped_rebuild_replaces_the_live_models(&stores[3]).await;
        promise::a_discarded_rebuild_changes_nothing(&stores[4]).await;
        for store in &stores {
            store.drop_database().await.unwrap();
        }
        let sent = sent.lock().unwrap().clone();
        assert!(sent.contains("update"), "writes are update commands: {sent:?}");
        let unknown: Vec<&String> = sent.iter().filter(|c| !MONGODB_6_COMMANDS.contains(&c.as_str())).collect();
        assert!(unknown.is_empty(), "commands MongoDB 6.0 does not have: {unknown:?} (all sent: {sent:?})");
    }

    mod suite {
        use super::*;
        slamon_domain::read_model_store_suite!(store().await.map(|s| ((), s)), |store: MongoStore| async move {
            store.drop_database().await.unwrap()
        });
    }

    /// A TCP proxy to `upstream` that forwards until `blackhole` is set, then holds every
    /// connection open and passes nothing (a network that drops packets without a reset).
    async fn blackhole_proxy(upstream: String, blackhole: Arc<std::sync::atomic::AtomicBool>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, blackhole) = (upstream.clone(), blackhole.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let pipe = |mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf| {
                        let blackhole = blackhole.clone();
                        async move {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let Ok(n) = from.read(&mut buf).await else { return };
                                if n == 0 {
                                    return;
                                }
                                while blackhole.load(Ordering::SeqCst) {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                                if to.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw), pipe(sr, cw));
                });
            }
        });
        format!("mongodb://{addr}/?directConnection=true")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_blackholed_connection_fails_the_call_within_the_deadline() {
        let Some(reachable) = store().await else { return };
        reachable.drop_database().await.unwrap();
        let uri = std::env::var("MONGODB_URI").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
        let upstream = uri.trim_start_matches("mongodb://").split(['/', '?']).next().unwrap().to_owned();
        let blackhole = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let config = MongoConfig {
            uri: blackhole_proxy(upstream, blackhole.clone()).await,
            database: format!("slamon_test_{}", uuid::Uuid::now_v7().simple()),
            timeout: Duration::from_millis(300),
            credential: None,
        };
        let store = MongoStore::connect(&config).await.unwrap();
        let labels: slamon_domain::Labels = [("__name__", "up")].into_iter().collect();
        let doc = Document::SlaSamples(slamon_domain::SlaSamplesView {
            id: labels.id(),
            labels,
            samples: vec![],
            scoring: Default::default(),
            applied: slamon_domain::Position::new(0, 1),
        });
        store.write(vec![doc.clone()]).await.expect("through the proxy");
        blackhole.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(30), store.write(vec![doc])).await;
        let err = outcome.expect("the call ends on its own").unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "the deadline (3 s), not the driver: {:?}",
            started.elapsed()
        );
        blackhole.store(false, Ordering::SeqCst);
        let _ = store.drop_database().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_within_the_timeout() {
        let config = MongoConfig {
            uri: "mongodb://127.0.0.1:9".into(),
            database: "x".into(),
            timeout: Duration::from_millis(500),
            credential: None,
        };
        let store = MongoStore::connect(&config).await.unwrap();
        let started = std::time::Instant::now();
        let err = store.sla_set().await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
