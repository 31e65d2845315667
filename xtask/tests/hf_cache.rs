//! `--model REPO` through the Hugging Face cache Python shares: a repo laid out as huggingface_hub
//! lays it out (`models--owner--name/{refs/main, snapshots/<commit>/…, blobs/}`) in a temporary
//! `HF_HUB_CACHE`, with `HF_HUB_OFFLINE=1`, is found by `tokenize`, `encode-prompt` and
//! `generate`, and gives what the local folder gives.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use parity_support::peak_rel_err as max_rel_err;

const REPO: &str = "test-org/tiny-qwen-image";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The tiny pipeline as a cached repo: every file in `snapshots/<commit>/`, `model_index.json` as
/// a link into `blobs/` the way huggingface_hub stores it, and `refs/main` naming the commit.
fn fake_cache(cache: &Path) {
    let repo = cache.join("models--test-org--tiny-qwen-image");
    let snap = repo.join("snapshots").join(COMMIT);
    copy_dir(&testdata().join("tiny-qwen-image"), &snap);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    let blob = repo.join("blobs/5f1e0c4d");
    std::fs::rename(snap.join("model_index.json"), &blob).unwrap();
    std::os::unix::fs::symlink(
        Path::new("../../blobs/5f1e0c4d"),
        snap.join("model_index.json"),
    )
    .unwrap();
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// xtask with the cache in `HF_HUB_CACHE` and no network; `HF_HOME` points elsewhere (empty) to
/// show that `HF_HUB_CACHE` wins, as in huggingface_hub.
fn xtask(cache: &Path, elsewhere: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    for k in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HUGGINGFACE_HUB_CACHE",
        "TRANSFORMERS_OFFLINE",
        "HF_ENDPOINT",
    ] {
        c.env_remove(k);
    }
    c.env("HF_HUB_CACHE", cache)
        .env("HF_HOME", elsewhere)
        .env("HF_HUB_OFFLINE", "1");
    c
}

fn tokenize(cmd: &mut Command) -> Output {
    cmd.args([
        "tokenize",
        "--json",
        "--text",
        "Hello world",
        "--model",
        REPO,
    ])
    .output()
    .unwrap()
}

#[test]
fn tokenize_finds_a_cached_repo_offline() {
    let (cache, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fake_cache(cache.path());
    let o = tokenize(&mut xtask(cache.path(), home.path()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["path"], "slow");
    assert_eq!(v["ids"], serde_json::json!([9707, 1879]));

    // The same repo under HF_HOME/hub, with HF_HUB_CACHE unset.
    let home2 = tempfile::tempdir().unwrap();
    fake_cache(&home2.path().join("hub"));
    let o = tokenize(xtask(cache.path(), home2.path()).env_remove("HF_HUB_CACHE"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Not cached, offline: exit 2, naming the repo and the cache searched.
    let empty = tempfile::tempdir().unwrap();
    let o = tokenize(&mut xtask(empty.path(), home.path()));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(REPO) && err.contains(&empty.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn encode_prompt_finds_a_cached_repo_offline() {
    let (cache, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fake_cache(cache.path());
    // The text encoder's golden batch: `{"batch": {"prompts": [...]}}` → `{"prompts": [...]}`.
    let golden = std::fs::read_to_string(testdata().join("text-encoder/prompts.json")).unwrap();
    let batch = &serde_json::from_str::<serde_json::Value>(&golden).unwrap()["batch"];
    let dir = tempfile::tempdir().unwrap();
    let (prompts, out) = (
        dir.path().join("p.json"),
        dir.path().join("out.safetensors"),
    );
    std::fs::write(&prompts, batch.to_string()).unwrap();
    let o = xtask(cache.path(), home.path())
        .args(["encode-prompt", "--model", REPO, "--prompts"])
        .arg(&prompts)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (got, _) = weights::Weights::open(&out)
        .unwrap()
        .get_f32("prompt_embeds")
        .unwrap();
    let (want, _) =
        weights::Weights::open(testdata().join("text-encoder/prompt_embeds.safetensors"))
            .unwrap()
            .get_f32("batch.encoded.prompt_embeds")
            .unwrap();
    assert_eq!(got.len(), want.len());
    assert!(max_rel_err(&got, &want) <= 1e-4);
}

#[test]
fn generate_finds_a_cached_repo_offline_by_branch_and_by_commit() {
    let (cache, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fake_cache(cache.path());
    let dir = tempfile::tempdir().unwrap();
    let gt = metrics::load_rgb(&testdata().join("gt/official_generated/tiny_t2i_seed_1gpu.png"))
        .unwrap();
    // The tiny seed-only case: diffusers with torch.Generator("cpu").manual_seed(42).
    let cases = cases::load(&testdata().join("cases/tiny.toml")).unwrap();
    let c = cases.iter().find(|c| c.id == "tiny_t2i_seed").unwrap();
    for revision in [None, Some(COMMIT)] {
        let out = dir.path().join("img.png");
        let mut cmd = xtask(cache.path(), home.path());
        cmd.args(["generate", "--model", REPO, "--prompt", &c.prompt]);
        cmd.args(["--negative-prompt", c.negative_prompt.as_deref().unwrap()]);
        for (flag, v) in [
            ("--true-cfg-scale", c.true_cfg_scale.unwrap().to_string()),
            ("--steps", c.num_inference_steps.to_string()),
            ("--height", c.height.unwrap().to_string()),
            ("--width", c.width.unwrap().to_string()),
            ("--seed", c.seed.unwrap().to_string()),
        ] {
            cmd.arg(flag).arg(v);
        }
        if let Some(r) = revision {
            cmd.args(["--revision", r]);
        }
        let o = cmd.arg("--out").arg(&out).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{revision:?}: {}", stderr(&o));
        let ours = metrics::load_rgb(&out).unwrap();
        assert!(metrics::psnr(&ours, &gt).unwrap() >= 40.0, "{revision:?}");
        std::fs::remove_file(&out).unwrap();
    }
}
