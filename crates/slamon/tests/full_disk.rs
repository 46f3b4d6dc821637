//! A full disk under the embedded default, on a real file system: `slamon up --demo` with
//! its data dir on a 4 MiB tmpfs, the file system then filled. redb's next commit fails
//! and it refuses every later call until reopened, so `/livez` must say so (503 with the
//! reason) and keep saying so after space comes back; a restart on the same data dir
//! serves again. Needs root (to mount the tmpfs); skipped locally without it, failing in CI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

mod support;

/// A tmpfs of `size` at a path, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_owned())),
            other => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true: a tmpfs must be mountable (run as root): {other:?}"
                );
                eprintln!("SKIPPED: cannot mount a tmpfs (not root?): {other:?}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Status and text of a GET; `None` when nothing answers.
async fn text(url: &str) -> Option<(u16, String)> {
    let res = reqwest::get(url).await.ok()?;
    Some((res.status().as_u16(), res.text().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_slamon_not_live_until_it_restarts_with_space() {
    let dir = tempfile::tempdir().unwrap();
    let Some(small) = Tmpfs::mount(&dir.path().join("small"), "4m") else { return };
    let (data, log) = (small.0.join("data"), dir.path().join("slamon.log"));
    let s = start_slamon(&data, "", &log, &[]);
    demo_series(&s).await;
    assert_eq!(text(&format!("{}/livez", s.query)).await.map(|(c, _)| c), Some(200));

    // fill the file system: redb's next commit that needs a page fails
    let filler = small.0.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).and_then(|()| f.flush()).is_ok() {}
    drop(f);
    let (_, reason) = eventually("/livez 503 after the disk filled", Duration::from_secs(90), async || {
        text(&format!("{}/livez", s.query)).await.filter(|(c, _)| *c == 503)
    })
    .await;
    assert!(reason.contains("embedded storage failed"), "{reason}");
    assert!(text(&format!("{}/livez", s.sla)).await.is_some_and(|(c, _)| c == 503), "the whole process is not live");

    // space back: redb stays failed until reopened, so the process stays not live
    std::fs::remove_file(&filler).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(text(&format!("{}/livez", s.query)).await.map(|(c, _)| c), Some(503));
    drop(s.proc);

    // what an orchestrator does on a failing liveness probe: a restart serves again
    let s = start_slamon(&data, "", &log, &[]);
    demo_series(&s).await;
    assert_eq!(text(&format!("{}/livez", s.query)).await.map(|(c, _)| c), Some(200));
    let set_answer = get(&format!("{}/slaset", s.sla)).await.map(|(c, _)| c);
    assert_eq!(set_answer, Some(200));
    drop(s.proc);
}
