//! Whether this process can still do its work: a backend that has failed for good until
//! the process restarts (redb after an I/O error on commit, e.g. a full disk, answers
//! every later call with "previous I/O error") says so here, and `/livez` answers 503,
//! so the orchestrator restarts the process instead of leaving it green and useless.

use std::sync::OnceLock;

static FAILURE: OnceLock<String> = OnceLock::new();

/// Records that the process cannot go on: `reason` (the first one is kept); true when
/// this call recorded it.
pub fn fail(reason: impl Into<String>) -> bool {
    FAILURE.set(reason.into()).is_ok()
}

/// Why the process cannot go on, once [`fail`] was called.
pub fn failure() -> Option<&'static str> {
    FAILURE.get().map(String::as_str)
}
