use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Publisher, TestEnv, http_get, listed, wait_until};

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB on `at`, or says why it cannot.
    fn mount(at: &Path, mib: u32) -> Result<SmallDisk, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a small filesystem needs root".into());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk(at.to_path_buf()))
    }

    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: statvfs reads our NUL-terminated path and fills our struct.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stat) }, 0);
        stat.f_bavail * stat.f_frsize
    }

    /// Writes a file until at most `leave` bytes are free (0: until the filesystem is full,
    /// down to the last page); returns its path.
    fn fill(&self, name: &str, leave: u64) -> PathBuf {
        let path = self.0.join(name);
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 << 10];
        while leave == 0 || self.free() > leave {
            if let Err(e) = file.write_all(&block).and_then(|()| file.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                break;
            }
        }
        if leave == 0 {
            while file.write_all(&[0u8; 512]).is_ok() {}
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn healthz(env: &TestEnv) -> Value {
    let (status, body) = http_get(&env.api_addr(), "/healthz", None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("healthz JSON")
}

#[test]
fn a_full_disk_pauses_ingestion_keeps_reads_and_resumes_when_space_returns() {
    let mut publisher = Publisher::start(&["papa", "quebec", "romeo"]);
    let env = TestEnv::with_feeds("interval = \"1s\"\nper_host = 3", &publisher.urls);
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{config}[retention]\nmin_free = \"8MiB\"\n"),
    )
    .unwrap();
    let disk = match SmallDisk::mount(&env.data_dir(), 32) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: the full-disk test needs a small filesystem: {why}");
            return;
        }
    };
    let daemon = env.start_daemon();
    wait_until(Duration::from_secs(30), "20 articles", || {
        listed(&env).len() >= 20
    });

    // 1. The disk fills up to below `min_free`: ingestion pauses before any write fails,
    // and every read goes on.
    let filler = disk.fill("filler", 4 << 20);
    wait_until(Duration::from_secs(30), "ingestion to pause", || {
        healthz(&env)["writable"] == false
    });
    assert_eq!(healthz(&env)["status"], "degraded");
    assert!(daemon.log().contains("nearly full"), "{}", daemon.log());
    let seen = listed(&env);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(listed(&env), seen, "nothing new is stored while paused");
    let (status, metrics) = http_get(&env.api_addr(), "/metrics", None);
    assert_eq!(status, 200);
    assert!(metrics.contains("feedsieve_store_writable 0"), "{metrics}");
    std::fs::remove_file(&filler).expect("remove the filler");
    wait_until(Duration::from_secs(60), "ingestion to resume", || {
        healthz(&env)["writable"] == true && listed(&env).len() > seen.len() + 10
    });

    // 2. Without the watermark, the disk fills to the last byte under sled: the write fails,
    // ingestion stops, and the store is reopened once there is room again.
    std::fs::write(&env.config, format!("{config}[retention]\nmin_free = 0\n")).unwrap();
    daemon.signal("HUP");
    wait_until(Duration::from_secs(10), "the reload", || {
        daemon
            .log()
            .contains("Dedup and retention settings reloaded")
    });
    let seen = listed(&env);
    let filler = disk.fill("filler", 0);
    wait_until(Duration::from_secs(30), "the failed write", || {
        daemon.log().contains("The disk refused a write")
    });
    // The daemon still answers: a read is served, or (when sled would have to rewrite a page
    // to serve it) refused with 503 and the reason, never a 500.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (status, body) = http_get(&env.api_addr(), "/v1/articles?after=0&limit=5", None);
        assert!(matches!(status, 200 | 503), "{status}: {body}");
        statuses.push(status);
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("reads while sled refuses writes: {statuses:?}");
    std::fs::remove_file(&filler).expect("remove the filler");
    wait_until(Duration::from_secs(60), "ingestion to resume", || {
        healthz(&env)["writable"] == true && listed(&env).len() > seen.len() + 10
    });
    assert!(
        daemon.log().contains("The database takes writes again"),
        "{}",
        daemon.log()
    );
    publisher.stop();
    let status = daemon.stop();
    assert!(status.success(), "exit status {status}");

    // Nothing corrupted, nothing listed lost, no seq skipped or reused.
    let fsck = env.run(&["fsck"]);
    assert!(
        fsck.status.success(),
        "fsck:\n{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let after = listed(&env);
    for (seq, id) in &seen {
        assert_eq!(after.get(seq), Some(id), "article {seq} was listed before");
    }
    let seqs: Vec<u64> = after.keys().copied().collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    drop(disk);
}
