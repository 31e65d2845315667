//! One output folder, one run (hostile input, round three): a second run into a folder another run
//! holds is refused naming the lock, and a case that cannot run this time shows none of the
//! previous run's images.

use std::path::Path;

use crate::common::{stderr, testdata, xtask};

/// A case file in `dir` with one text-to-image case on the tiny folder, `extra` appended.
fn case_file(dir: &Path, extra: &str) -> std::path::PathBuf {
    let model = testdata().join("tiny-qwen-image");
    let path = dir.join("cases.toml");
    std::fs::write(
        &path,
        format!(
            "gt_root = {:?}\n[[case]]\nid = \"tiny_t2i_cfg\"\nmodel = {:?}\nprompt = \"x\"\n\
             num_inference_steps = 2\n{extra}",
            testdata().join("gt").to_str().unwrap(),
            model.to_str().unwrap()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_second_run_into_a_locked_folder_is_refused_naming_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let cases = case_file(dir.path(), "height = 64\nwidth = 64\n");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let lock = std::fs::File::create(out.join(".consistency.lock")).unwrap();
    lock.try_lock().unwrap();
    let o = xtask()
        .args(["consistency", "--no-clip", "--cases"])
        .arg(&cases)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(".consistency.lock"), "{}", stderr(&o));
    assert!(!out.join("report.json").exists());
}

#[test]
fn a_case_that_cannot_run_shows_none_of_the_last_runs_images() {
    let dir = tempfile::tempdir().unwrap();
    // 8 pixels: below one packed token, so the case cannot run.
    let cases = case_file(dir.path(), "height = 8\nwidth = 64\n");
    let out = dir.path().join("out");
    let stale = out.join("cases/tiny_t2i_cfg");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("output.png"), b"old").unwrap();
    let o = xtask()
        .args(["consistency", "--no-clip", "--cases"])
        .arg(&cases)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stale.join("output.png").exists());
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        !html.contains("data:image/png"),
        "the old image is in the page"
    );
}
