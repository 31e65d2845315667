//! Every command reads only regular files under a cap, and writes only a new path or a regular
//! file (issue 29, item 4): a FIFO is refused instead of blocking, a device node instead of read
//! without end or replaced by a regular file, a folder by name. The nodes are made in a temp
//! folder (never the real `/dev` ones; `mknod` needs root: those tests say they skipped
//! elsewhere, and CI runs as root), and every command runs under `prlimit --as` so that a
//! regression reading an endless source cannot eat the machine's memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{stderr, testdata};

/// The address space each command may use: far over what these tiny runs need, far under
/// what an endless read would take.
const AS_LIMIT: &str = "--as=6442450944";

/// `xtask ARGS` under the memory limit, with its GT settings kept off the user's, killed (and
/// the test failed) if it does not end within 120 s: a FIFO that blocks a reader.
fn run(args: &[&str], cache: &Path) -> Output {
    let mut c = Command::new("prlimit");
    c.arg(AS_LIMIT)
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("GT_RESOLVER_CACHE_DIR", cache)
        .env("GT_RESOLVER_ATTEMPTS", "1")
        .env_remove("SGLANG_CONSISTENCY_GT_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("prlimit (util-linux) and xtask");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xtask {args:?} did not end: blocked on a special file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// A FIFO and (as root) a character device with `/dev/zero`'s numbers in `dir`; the device is
/// `None`, with the reason printed, where `mknod` is not allowed.
fn special_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let fifo = dir.join(format!("fifo-{name}"));
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
    let mut files = vec![fifo];
    let node = dir.join(format!("zero-{name}"));
    match Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "5"])
        .status()
    {
        Ok(s) if s.success() => files.push(node),
        _ => eprintln!("skipped the device node: mknod needs root (CI runs as root)"),
    }
    files
}

/// A command's name and its arguments around the special file's path.
type Cmd<'a> = (&'a str, Box<dyn Fn(&str) -> Vec<String> + 'a>);

fn t(p: &Path) -> String {
    p.display().to_string()
}

fn assert_refused(o: &Output, path: &Path, what: &str) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&t(path)) && err.contains(what), "{err}");
}

#[test]
fn readers_refuse_fifos_devices_and_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let td = testdata();
    let gt = td.join("gt/official_generated/tiny_t2i_cfg_1gpu.png");
    let prompts = dir.path().join("prompts.json");
    std::fs::write(&prompts, r#"{"prompts": ["x"]}"#).expect("write");
    let out = t(&dir.path().join("out"));
    let (edit, t2i) = (
        t(&td.join("tiny-qwen-image-edit")),
        t(&td.join("tiny-qwen-image")),
    );
    let layered = t(&td.join("tiny-qwen-image-layered"));
    let cases = t(&td.join("cases/tiny.toml"));
    let emb = t(&dir.path().join("e.safetensors"));
    let readers: Vec<Cmd> = vec![
        (
            "metrics OUTPUT",
            Box::new(|p| v(&["metrics", p, &t(&gt), "--clip-model", "/none"])),
        ),
        (
            "metrics GT",
            Box::new(|p| v(&["metrics", &t(&gt), p, "--clip-model", "/none"])),
        ),
        (
            "generate --image",
            Box::new(|p| {
                v(&[
                    "generate", "--model", &edit, "--prompt", "x", "--image", p, "--out", &out,
                ])
            }),
        ),
        (
            "caption --image",
            Box::new(|p| v(&["caption", "--model", &layered, "--image", p])),
        ),
        (
            "tokenize --file",
            Box::new(|p| v(&["tokenize", "--model", &t2i, "--file", p])),
        ),
        (
            "encode-prompt --prompts",
            Box::new(|p| {
                v(&[
                    "encode-prompt",
                    "--model",
                    &t2i,
                    "--prompts",
                    p,
                    "--output",
                    &emb,
                ])
            }),
        ),
        (
            "encode-prompt --image",
            Box::new(|p| {
                let pr = t(&prompts);
                v(&[
                    "encode-prompt",
                    "--model",
                    &edit,
                    "--prompts",
                    &pr,
                    "--image",
                    p,
                    "--output",
                    &emb,
                ])
            }),
        ),
        (
            "consistency --thresholds",
            Box::new(|p| {
                v(&[
                    "consistency",
                    "--cases",
                    &cases,
                    "--case",
                    "tiny_t2i_cfg",
                    "--no-clip",
                    "--thresholds",
                    p,
                    "--out",
                    &out,
                ])
            }),
        ),
        ("bench gpu", Box::new(|p| v(&["bench", "gpu", p]))),
    ];
    let mut paths = special_files(dir.path(), "in.png");
    paths.push(dir.path().to_path_buf());
    for path in &paths {
        let what = if path.is_dir() {
            "folder"
        } else {
            "not a regular file"
        };
        for (name, args) in &readers {
            let args = args(&t(path));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = run(&args, &cache);
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{name}: panic: {err}");
            assert_eq!(o.status.code(), Some(2), "{name}: {err}");
            assert!(
                err.contains(&t(path)) && err.contains(what),
                "{name} on {}: {err}",
                path.display()
            );
        }
    }
}

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn writers_refuse_a_special_file_and_leave_it_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let td = testdata();
    let prompts = dir.path().join("prompts.json");
    std::fs::write(&prompts, r#"{"prompts": ["x"]}"#).expect("write");
    let t2i = t(&td.join("tiny-qwen-image"));
    let writers: Vec<Cmd> = vec![
        (
            "randn --output",
            Box::new(|p| {
                v(&[
                    "randn",
                    "--generator",
                    "cpu",
                    "--seed",
                    "1",
                    "--shape",
                    "2",
                    "--output",
                    p,
                ])
            }),
        ),
        (
            "encode-prompt --output",
            Box::new(|p| {
                v(&[
                    "encode-prompt",
                    "--model",
                    &t2i,
                    "--prompts",
                    &t(&prompts),
                    "--output",
                    p,
                ])
            }),
        ),
        (
            "generate --out",
            Box::new(|p| {
                v(&[
                    "generate", "--model", &t2i, "--prompt", "x", "--height", "64", "--width",
                    "64", "--steps", "2", "--out", p,
                ])
            }),
        ),
        (
            "forward --timings",
            Box::new(|p| {
                v(&[
                    "forward",
                    "dit",
                    "--model",
                    &t(&td.join("tiny-qwen-image/transformer")),
                    "--inputs",
                    &t(&td.join("dit/b1_nomask.safetensors")),
                    "--output",
                    &t(&dir.path().join("f.safetensors")),
                    "--timings",
                    p,
                ])
            }),
        ),
    ];
    // `/dev/null`'s numbers: a write would be harmless, the replacement is what is refused.
    let mut nodes = Vec::new();
    let fifo = dir.path().join("fifo-out.png");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success())
    );
    nodes.push(fifo);
    let null = dir.path().join("null-out.png");
    match Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
    {
        Ok(s) if s.success() => nodes.push(null),
        _ => eprintln!("skipped the device node: mknod needs root (CI runs as root)"),
    }
    for node in &nodes {
        for (name, args) in &writers {
            let args = args(&t(node));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = run(&args, &cache);
            assert_refused(&o, node, "only a new path or a regular file is written");
            let meta = std::fs::symlink_metadata(node).expect("still there");
            assert!(!meta.is_file(), "{name} replaced {}", node.display());
        }
    }
    // A regular file is still replaced, and a new path written.
    let file = dir.path().join("noise.safetensors");
    std::fs::write(&file, b"old").expect("write");
    for path in [&file, &dir.path().join("new.safetensors")] {
        let o = run(
            &[
                "randn",
                "--generator",
                "cpu",
                "--seed",
                "1",
                "--shape",
                "2",
                "--output",
                &t(path),
            ],
            &cache,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(std::fs::metadata(path).expect("written").len() > 3);
    }
}
