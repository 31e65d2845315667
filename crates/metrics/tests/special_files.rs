//! The crate reads only regular files, each under a cap (issue 29, item 4): a FIFO is refused
//! without blocking, a device node (made in a temp folder, never the real `/dev` ones) without
//! a byte read, a folder or an oversized file by name; and a file that does not decode is named,
//! never `<memory>` (item 8). Reads that a regression could turn endless run in a child process
//! under `prlimit --as`, so that they cannot eat the machine's memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use metrics::{ClipPreprocessor, Thresholds, load_rgb};

const CHILD_ENV: &str = "METRICS_TEST_SPECIAL_CHILD";

/// What each reader says about `path`, or `None` if one did not answer within 10 s (a FIFO
/// left blocked in `open`). Every reader must refuse it.
fn refusals(path: &Path) -> Option<Vec<String>> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let said = vec![
            load_rgb(&p).map(|_| ()).map_err(|e| e.to_string()),
            Thresholds::from_file(&p)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            ClipPreprocessor::from_file(&p)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ];
        let _ = tx.send(said);
    });
    let said = rx.recv_timeout(Duration::from_secs(10)).ok()?;
    Some(
        said.into_iter()
            .map(|r| match r {
                Ok(()) => panic!("{} was read as a valid input", path.display()),
                Err(e) => e,
            })
            .collect(),
    )
}

fn assert_refused(path: &Path, needle: &str) {
    let said = refusals(path).unwrap_or_else(|| panic!("{} blocked a reader", path.display()));
    for e in said {
        assert!(
            e.contains(&path.display().to_string()) && e.contains(needle),
            "`{needle}` missing from: {e}"
        );
    }
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.png");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mkfifo is not available here");
        return;
    }
    assert_refused(&fifo, "not a regular file");
}

#[test]
fn a_folder_and_an_oversized_file_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_refused(dir.path(), "it is a folder");
    // Sparse: nothing is written to disk, and nothing may be read from it.
    let big = dir.path().join("big.png");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(metrics::MAX_IMAGE_BYTES + 1).expect("set_len");
    let e = load_rgb(&big).expect_err("too big").to_string();
    assert!(e.contains("over the 268435456-byte limit"), "{e}");
}

#[test]
fn an_image_that_does_not_decode_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in [
        ("page.png", &b"<html>not an image</html>"[..]),
        ("cut.jpg", &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16][..]),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        let e = load_rgb(&p).expect_err(name).to_string();
        assert!(
            e.contains(&p.display().to_string()) && !e.contains("<memory>"),
            "{e}"
        );
    }
}

/// A character device with `/dev/zero`'s numbers, made in a temp folder (needs root: skipped,
/// and said so, elsewhere; CI runs as root). Read in a child under a 2 GiB address-space limit.
#[test]
fn a_device_node_is_refused_before_a_byte_is_read() {
    if let Some(node) = std::env::var_os(CHILD_ENV) {
        assert_refused(&PathBuf::from(node), "not a regular file");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node = dir.path().join("zero.png");
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "5"])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mknod needs root (CI runs as root)");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("prlimit")
        .arg("--as=2147483648")
        .arg(exe)
        .args([
            "--exact",
            "a_device_node_is_refused_before_a_byte_is_read",
            "--nocapture",
        ])
        .env(CHILD_ENV, &node)
        .output()
        .expect("prlimit (util-linux)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
