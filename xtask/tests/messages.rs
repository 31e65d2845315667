//! What the errors say (issue 29, item 8): an image is named by its file, never `<memory>`; a
//! folder or a device is called what it is, never "does not exist"; `-inf` is a value of its
//! option, not an unknown `-i`; a NUL byte from a user's file is escaped, never echoed raw; a
//! full disk is said once. (The ftp:// GT root is in `gt_cache`.) And an option that does not
//! apply to the folder is refused, not accepted silently (item 7).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{stderr, testdata, xtask};

fn assert_2(o: &Output) -> String {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(o.status.code(), Some(2), "{err}");
    err
}

#[test]
fn an_input_image_that_does_not_decode_is_named_by_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("page.png");
    std::fs::write(&bad, b"<html>not an image</html>").expect("write");
    let o = xtask()
        .args(["generate", "--model"])
        .arg(testdata().join("tiny-qwen-image-edit"))
        .args(["--prompt", "x", "--image"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("o.png"))
        .output()
        .expect("run xtask");
    let err = assert_2(&o);
    assert!(
        err.contains(&bad.display().to_string()) && !err.contains("<memory>"),
        "{err}"
    );
}

/// A case file in `dir` whose case has `line` (paths relative to the file).
fn case_file(dir: &Path, head: &str, line: &str) -> std::path::PathBuf {
    let p = dir.join("cases.toml");
    let body = format!(
        "{head}[[case]]\nid = \"c\"\nmodel = {:?}\nprompt = \"x\"\n{line}\n",
        testdata().join("tiny-qwen-image-edit")
    );
    std::fs::write(&p, body).expect("write");
    p
}

fn resolve_only(cases: &Path) -> Output {
    xtask()
        .args(["consistency", "--resolve-only", "--gt-root"])
        .arg(testdata().join("gt"))
        .arg("--cases")
        .arg(cases)
        .output()
        .expect("run xtask")
}

#[test]
fn a_folder_or_a_device_is_not_said_not_to_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).expect("mkdir");
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
    );
    for (path, says) in [(&folder, "is a folder"), (&fifo, "is not a regular file")] {
        let p = format!("{:?}", path.display().to_string());
        for (head, line) in [
            (String::new(), format!("image = {p}")),
            (String::new(), format!("latents = {p}")),
            (format!("thresholds = {p}\n"), String::new()),
        ] {
            let cases = case_file(dir.path(), &head, &line);
            let err = assert_2(&resolve_only(&cases));
            assert!(
                err.contains(says) && !err.contains("does not exist"),
                "{line}{head}: {err}"
            );
        }
        // The case file itself.
        let err = assert_2(&resolve_only(path));
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn minus_infinity_is_a_value_of_its_option() {
    let o = xtask()
        .args([
            "generate",
            "--model",
            "/nonexistent/model",
            "--prompt",
            "x",
            "--true-cfg-scale",
            "-inf",
            "--out",
        ])
        .arg(std::env::temp_dir().join("qwen-messages-never-written.png"))
        .output()
        .expect("run xtask");
    let err = assert_2(&o);
    assert!(
        !err.contains("unexpected argument") && err.contains("true_cfg_scale is -inf"),
        "{err}"
    );
}

#[test]
fn a_nul_byte_from_a_file_is_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nid = \"a\\u0000b\"\nmodel = \"m\"\nprompt = \"x\"\n",
    )
    .expect("write");
    let o = resolve_only(&cases);
    let err = assert_2(&o);
    assert!(!o.stderr.contains(&0), "a raw NUL in: {err:?}");
    assert!(err.contains("a\\u{0}b"), "{err}");
}

/// A 16 KiB tmpfs (mounting needs root: skipped, and said so, elsewhere).
#[test]
fn a_full_disk_is_said_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = dir.path().join("full");
    std::fs::create_dir(&full).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&full)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let o = xtask()
        .args([
            "randn",
            "--generator",
            "cpu",
            "--seed",
            "1",
            "--shape",
            "100000",
            "--output",
        ])
        .arg(full.join("noise.safetensors"))
        .output()
        .expect("run xtask");
    let _ = Command::new("umount").arg(&full).status();
    let err = assert_2(&o);
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
}

#[test]
fn vision_positions_on_a_folder_without_prompt_images_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = testdata().join("e2e-edit/edit_input.jpg");
    for (folder, extra) in [
        (
            "tiny-qwen-image-layered",
            &["--image", &*image.to_string_lossy()][..],
        ),
        ("tiny-qwen-image", &[]),
    ] {
        let o = xtask()
            .args(["generate", "--model"])
            .arg(testdata().join(folder))
            .args(["--prompt", "x", "--vision-positions", "sequential"])
            .args(extra)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .expect("run xtask");
        let err = assert_2(&o);
        assert!(
            err.contains("--vision-positions applies to"),
            "{folder}: {err}"
        );
    }
}
