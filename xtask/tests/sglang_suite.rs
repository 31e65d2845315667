//! SGLang's Qwen-Image suite, drop-in (`cases/sglang-qwen-image.toml`): upstream's cases with
//! SGLang's defaults and skips, its threshold files, and which GT file each case resolves to on a
//! loopback copy of the real ci-data-diffusion tree (file names as they are at two commits of
//! `sgl-project/ci-data-diffusion`, placeholder contents); the committed
//! `docs/sglang-qwen-gt.md` is that answer (`UPDATE_EXPECT=1` rewrites it). Also: the runner's
//! JPEG comparison (PIL's q75 round trip), skipped cases in a real run, `generate --generator`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cases::{GeneratorKind, SglangPreset};
use torch_rng::{CudaGenerator, CudaPlatform};

use crate::common::{root, stderr, testdata, xtask_with_cache as xtask};

fn suite_path() -> PathBuf {
    root().join("cases/sglang-qwen-image.toml")
}

// --- The suite file ------------------------------------------------------------------------

/// Upstream's Qwen case ids (gpu_cases.py at sgl-project/sglang 2ced882), with the skip each has.
const CASES: &[(&str, bool)] = &[
    ("qwen_image_t2i", false),
    ("qwen_image_t2i_cache_dit_enabled", true),
    ("qwen_image_t2i_cache_dit_scm_config_diffusers_1gpu", true),
    ("qwen_image_edit_ti2i", false),
    ("qwen_image_edit_2509_ti2i", false),
    ("qwen_image_edit_2511_ti2i", false),
    ("qwen_image_layered_i2i", false),
    ("qwen_image_modelopt_fp8_t2i", true),
    ("qwen_image_edit_modelopt_fp8_ti2i", true),
    ("qwen_image_2512_modelopt_nvfp4_t2i", true),
    ("qwen_image_t2i_2_gpus", true),
];

#[test]
fn the_suite_is_upstreams_cases_with_sglang_defaults_and_listed_skips() {
    let suite = cases::load_suite(&suite_path()).unwrap();
    let ids: Vec<(&str, bool)> = suite
        .cases
        .iter()
        .map(|c| (c.id.as_str(), c.skip.is_some()))
        .collect();
    assert_eq!(ids, CASES);
    let case = |id: &str| suite.cases.iter().find(|c| c.id == id).unwrap();

    let t2i = case("qwen_image_t2i");
    assert_eq!(t2i.preset, Some(SglangPreset::QwenImage));
    assert_eq!(t2i.prompt, "Doraemon is eating dorayaki");
    assert_eq!((t2i.height, t2i.width), (Some(1024), Some(1024)));
    assert_eq!(t2i.negative_prompt.as_deref(), Some(" "));
    assert_eq!((t2i.guidance_scale, t2i.true_cfg_scale), (Some(4.0), None));
    assert_eq!((t2i.num_inference_steps, t2i.seed), (50, Some(42)));
    assert_eq!(t2i.generator, GeneratorKind::Cuda);
    assert_eq!((t2i.output_format.as_str(), t2i.num_gpus), ("jpg", 1));

    let plus = case("qwen_image_edit_2511_ti2i");
    assert_eq!(plus.preset, Some(SglangPreset::EditPlus));
    assert_eq!(plus.num_inference_steps, 40);
    assert_eq!(
        (plus.height, plus.width),
        (None, None),
        "size from the image"
    );
    assert_eq!(case("qwen_image_edit_ti2i").num_inference_steps, 50);
    let layered = case("qwen_image_layered_i2i");
    assert_eq!(layered.preset, Some(SglangPreset::Layered));
    assert_eq!((layered.height, layered.width), (None, None));
    assert_eq!(SglangPreset::Layered.resolution(), Some(640));
    assert_eq!(layered.output_format, "png");
    let o = &layered.layered;
    assert_eq!(o.layers, 4, "upstream's num_frames=4");
    assert!(
        o.cfg_normalize && o.use_en_prompt,
        "SGLang's Layered defaults"
    );
    assert_eq!(layered.images.len(), 1);
    let nvfp4 = case("qwen_image_2512_modelopt_nvfp4_t2i");
    assert_eq!(nvfp4.preset, Some(SglangPreset::QwenImage2512));
    assert_eq!((nvfp4.seed, nvfp4.num_inference_steps), (Some(0), 50));
    assert_eq!(case("qwen_image_t2i_2_gpus").num_gpus, 2);
    for c in suite.cases.iter().filter(|c| c.skip.is_some()) {
        assert!(c.skip.as_deref().unwrap().len() > 20, "{}: say why", c.id);
    }

    // The GT root is upstream's, pinned to a commit; the thresholds are upstream's files.
    let gt_root = suite.gt_root.unwrap();
    let pin = gt_root
        .strip_prefix("https://raw.githubusercontent.com/sgl-project/ci-data-diffusion/")
        .and_then(|r| r.strip_suffix("/diffusion-ci/consistency_gt"))
        .unwrap();
    assert!(pin.len() == 40 && pin.bytes().all(|b| b.is_ascii_hexdigit()));
    let base = suite.thresholds.unwrap();
    assert!(base.ends_with("cases/consistency_thresholds/h100.json"));
    let h100 = metrics::Thresholds::load(&base, None).unwrap();
    let t = h100.for_case("qwen_image_t2i", metrics::Media::Image);
    assert_eq!(
        (t.clip, t.ssim, t.psnr, t.mean_abs_diff),
        (0.97, 0.83, 16.0, 13.3)
    );
    let t = h100.for_case("qwen_image_modelopt_fp8_t2i", metrics::Media::Image);
    assert_eq!(
        (t.clip, t.ssim, t.psnr, t.mean_abs_diff),
        (0.92, 0.95, 28.0, 8.0)
    );
    let rtx = metrics::Thresholds::load(&base, Some(&base.with_file_name("5090.json"))).unwrap();
    let z = rtx.for_case("zimage_image_t2i", metrics::Media::Image);
    assert_eq!(
        (z.ssim, z.psnr),
        (0.86, 19.5),
        "5090.json laid over h100.json"
    );
}

// --- A loopback copy of the real tree ------------------------------------------------------

const REPO: &str = "sgl-project/ci-data-diffusion";
const TREE: &str = "diffusion-ci/consistency_gt";

/// The Qwen files under `diffusion-ci/consistency_gt/` of sgl-project/ci-data-diffusion at a
/// commit, as `git ls-tree` lists them in the mirror (names only).
struct Snapshot {
    commit: &'static str,
    date: &'static str,
    files: &'static [&'static str],
}

/// main at 2026-07-24: every Qwen case also has an h100/ copy of SGLang's own output.
const HEAD: Snapshot = Snapshot {
    commit: "6d689f4833e8c106ff0d853865f50496d1f2b453",
    date: "2026-07-24",
    files: &[
        "official_generated/qwen_image_edit_2509_ti2i_1gpu.jpg",
        "official_generated/qwen_image_edit_2511_ti2i_1gpu.jpg",
        "official_generated/qwen_image_edit_ti2i_1gpu.jpg",
        "official_generated/qwen_image_layered_i2i_1gpu.png",
        "official_generated/qwen_image_t2i_1gpu.jpg",
        "sglang_generated/ascend/qwen_image_t2i_2npu_2gpu.jpg",
        "sglang_generated/b200/qwen_image_2512_modelopt_nvfp4_t2i_1gpu.jpg",
        "sglang_generated/h100/qwen_image_edit_2509_ti2i_1gpu.jpg",
        "sglang_generated/h100/qwen_image_edit_2511_ti2i_1gpu.jpg",
        "sglang_generated/h100/qwen_image_edit_modelopt_fp8_ti2i_1gpu.jpg",
        "sglang_generated/h100/qwen_image_edit_ti2i_1gpu.jpg",
        "sglang_generated/h100/qwen_image_layered_i2i_1gpu.png",
        "sglang_generated/h100/qwen_image_modelopt_fp8_t2i_1gpu.jpg",
        "sglang_generated/h100/qwen_image_t2i_1gpu.jpg",
        "sglang_generated/h100/qwen_image_t2i_2_gpus_2gpu.jpg",
        "sglang_generated/h100/qwen_image_t2i_cache_dit_enabled_1gpu.jpg",
        "sglang_generated/h100/qwen_image_t2i_cache_dit_scm_config_diffusers_1gpu_1gpu.jpg",
        "sglang_generated/qwen_image_2512_modelopt_nvfp4_t2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_2509_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_2511_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_modelopt_fp8_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_layered_i2i_1gpu.png",
        "sglang_generated/qwen_image_modelopt_fp8_t2i_1gpu.jpg",
        "sglang_generated/qwen_image_t2i_1gpu.jpg",
        "sglang_generated/qwen_image_t2i_2_gpus_2gpu.jpg",
        "sglang_generated/qwen_image_t2i_cache_dit_enabled_1gpu.jpg",
    ],
};

/// The repository's first commit (2026-07-21, seeded from sgl-project/ci-data): no platform
/// copies yet, no GT for the two ModelOpt FP8 text-to-image cases.
const SEED: Snapshot = Snapshot {
    commit: "b8f753fff6adbe9ed04e6fdf14543411029ba49c",
    date: "2026-07-21",
    files: &[
        "official_generated/qwen_image_edit_2509_ti2i_1gpu.jpg",
        "official_generated/qwen_image_edit_2511_ti2i_1gpu.jpg",
        "official_generated/qwen_image_edit_ti2i_1gpu.jpg",
        "official_generated/qwen_image_layered_i2i_1gpu.png",
        "official_generated/qwen_image_t2i_1gpu.jpg",
        "sglang_generated/ascend/qwen_image_t2i_2npu_2gpu.jpg",
        "sglang_generated/b200/qwen_image_2512_modelopt_nvfp4_t2i_1gpu.jpg",
        "sglang_generated/qwen_image_2512_modelopt_nvfp4_t2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_2509_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_2511_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_modelopt_fp8_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_edit_ti2i_1gpu.jpg",
        "sglang_generated/qwen_image_layered_i2i_1gpu.png",
        "sglang_generated/qwen_image_t2i_1gpu.jpg",
        "sglang_generated/qwen_image_t2i_2_gpus_2gpu.jpg",
        "sglang_generated/qwen_image_t2i_cache_dit_enabled_1gpu.jpg",
    ],
};

/// The Qwen entries of `official_generated/case_map.json` (the same at both commits).
const OFFICIAL_OUTPUTS: &[(&str, &str)] = &[
    (
        "qwen_image_edit_2509_ti2i",
        "qwen_image_edit_2509_ti2i_1gpu.jpg",
    ),
    (
        "qwen_image_edit_2511_ti2i",
        "qwen_image_edit_2511_ti2i_1gpu.jpg",
    ),
    ("qwen_image_edit_ti2i", "qwen_image_edit_ti2i_1gpu.jpg"),
    ("qwen_image_layered_i2i", "qwen_image_layered_i2i_1gpu.png"),
    ("qwen_image_t2i", "qwen_image_t2i_1gpu.jpg"),
];

/// A tiny valid image for a name (the lookup never decodes it).
fn placeholder(name: &str) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(2, 2, image::Rgb([200, 100, 50]));
    let format = if name.ends_with(".png") {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

/// A loopback server holding one snapshot under `/<repo>/<commit>/<tree>/…` (raw files: HEAD,
/// GET, ranged GET) and GitHub's `git/trees` listing of it. Counts requests.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    /// Serves `files` (request path without the leading `/` → body); counts requests.
    fn files(files: BTreeMap<String, Vec<u8>>) -> Self {
        let listing = serde_json::json!({"tree": []});
        Self::serve(files, String::new(), "/-".into(), listing)
    }

    fn start(snap: &Snapshot) -> Self {
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for f in snap.files {
            files.insert(format!("{TREE}/{f}"), placeholder(f));
        }
        let map: serde_json::Map<String, serde_json::Value> = OFFICIAL_OUTPUTS
            .iter()
            .map(|(case, out)| (case.to_string(), serde_json::json!({"outputs": [out]})))
            .collect();
        files.insert(
            format!("{TREE}/official_generated/case_map.json"),
            serde_json::to_vec(&serde_json::json!({"cases": map})).unwrap(),
        );
        let listing = serde_json::json!({
            "sha": snap.commit,
            "truncated": false,
            "tree": files.keys().map(|p| serde_json::json!({"path": p, "type": "blob"})).collect::<Vec<_>>(),
        });
        let raw_prefix = format!("/{REPO}/{}/", snap.commit);
        let api_path = format!("/repos/{REPO}/git/trees/{}?recursive=1", snap.commit);
        Self::serve(files, raw_prefix, api_path, listing)
    }

    fn serve(
        files: BTreeMap<String, Vec<u8>>,
        raw_prefix: String,
        api_path: String,
        listing: serde_json::Value,
    ) -> Self {
        let raw_prefix = if raw_prefix.is_empty() {
            "/".to_string()
        } else {
            raw_prefix
        };
        let files = Arc::new(files);
        let listing = Arc::new(serde_json::to_vec(&listing).unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let (files, listing) = (files.clone(), listing.clone());
                let (raw_prefix, api_path) = (raw_prefix.clone(), api_path.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let body: Option<&[u8]> = if target == api_path {
                        Some(&listing)
                    } else {
                        target
                            .strip_prefix(&raw_prefix)
                            .and_then(|p| files.get(p))
                            .map(Vec::as_slice)
                    };
                    let mut out = stream;
                    let _ = match body {
                        Some(b) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                b.len()
                            );
                            out.write_all(head.as_bytes()).and_then(|()| {
                                if method == "HEAD" {
                                    Ok(())
                                } else {
                                    out.write_all(b)
                                }
                            })
                        }
                        None => out.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        ),
                    };
                    let _ = out.flush();
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest);
                });
            }
        });
        Server { base, requests }
    }

    fn gt_root(&self, snap: &Snapshot) -> String {
        format!("{}/{REPO}/{}/{TREE}", self.base, snap.commit)
    }
}

/// `consistency --resolve-only --json` of the suite against `snap` served over loopback; with
/// `listing`, the server also answers as GitHub's API (the path a raw.githubusercontent.com root
/// takes), else every candidate is probed.
fn resolve(snap: &Snapshot, platform: Option<&str>, listing: bool) -> (serde_json::Value, Output) {
    let (json, out, _) = resolve_at(snap, platform, listing);
    (json, out)
}

/// [`resolve`], and the loopback base that stood for raw.githubusercontent.com.
fn resolve_at(
    snap: &Snapshot,
    platform: Option<&str>,
    listing: bool,
) -> (serde_json::Value, Output, String) {
    let server = Server::start(snap);
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = xtask(cache.path());
    cmd.args(["consistency", "--cases"])
        .arg(suite_path())
        .args([
            "--resolve-only",
            "--json",
            "--gt-root",
            &server.gt_root(snap),
        ]);
    if let Some(p) = platform {
        cmd.args(["--platform", p]);
    }
    if listing {
        cmd.env("QWEN_GITHUB_API", &server.base);
    }
    let out = cmd.output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    assert!(server.requests.load(Ordering::SeqCst) > 0);
    (json, out, server.base)
}

/// `id -> (source, file)` of a resolve-only answer.
fn picks(json: &serde_json::Value) -> BTreeMap<String, (String, Option<String>)> {
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (
                    c["source"].as_str().unwrap().to_string(),
                    c["file"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

fn pick<'a>(p: &'a BTreeMap<String, (String, Option<String>)>, id: &str) -> (&'a str, &'a str) {
    let (s, f) = &p[id];
    (s.as_str(), f.as_deref().unwrap_or("-"))
}

#[test]
fn resolve_only_follows_upstreams_order_on_a_loopback_copy_of_the_tree() {
    // h100 at main: SGLang's own h100/ copies win over the bare official GT (platform first).
    let (json, out) = resolve(&HEAD, Some("h100"), false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json["platform"], "h100");
    let p = picks(&json);
    assert_eq!(p.len(), CASES.len(), "skipped cases are resolved too");
    assert_eq!(
        pick(&p, "qwen_image_t2i"),
        ("sglang", "sglang_generated/h100/qwen_image_t2i_1gpu.jpg")
    );
    assert_eq!(
        pick(&p, "qwen_image_t2i_cache_dit_scm_config_diffusers_1gpu"),
        (
            "sglang",
            "sglang_generated/h100/qwen_image_t2i_cache_dit_scm_config_diffusers_1gpu_1gpu.jpg"
        )
    );
    assert_eq!(
        pick(&p, "qwen_image_t2i_2_gpus"),
        (
            "sglang",
            "sglang_generated/h100/qwen_image_t2i_2_gpus_2gpu.jpg"
        )
    );
    let t2i = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "qwen_image_t2i")
        .unwrap();
    assert!(
        t2i["reason"]
            .as_str()
            .unwrap()
            .contains("absent before it: official_generated/h100/qwen_image_t2i_1gpu.jpg"),
        "{t2i}"
    );
    assert!(t2i["compare"].as_str().unwrap().contains("quality=75"));
    let skipped = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["skipped"].is_null())
        .count();
    assert_eq!(skipped, 6);

    // b200 (upstream's alias `blackwell`, from the environment): no b200/ copies except NVFP4's,
    // so the official diffusers GT is used where case_map.json declares it, except for the
    // quarantined Edit-2509.
    let server = Server::start(&HEAD);
    let cache = tempfile::tempdir().unwrap();
    let out = xtask(cache.path())
        .env("SGLANG_DIFFUSION_CONSISTENCY_PLATFORM", "blackwell")
        .args(["consistency", "--cases"])
        .arg(suite_path())
        .args([
            "--resolve-only",
            "--json",
            "--gt-root",
            &server.gt_root(&HEAD),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the SCM case has no b200 GT");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["platform"], "b200");
    assert_eq!(
        json["platform_why"],
        "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM=blackwell"
    );
    let p = picks(&json);
    assert_eq!(
        pick(&p, "qwen_image_t2i"),
        ("official", "official_generated/qwen_image_t2i_1gpu.jpg")
    );
    assert_eq!(
        pick(&p, "qwen_image_layered_i2i"),
        (
            "official",
            "official_generated/qwen_image_layered_i2i_1gpu.png"
        )
    );
    assert_eq!(
        pick(&p, "qwen_image_edit_2509_ti2i"),
        (
            "sglang",
            "sglang_generated/qwen_image_edit_2509_ti2i_1gpu.jpg"
        )
    );
    assert_eq!(
        pick(&p, "qwen_image_2512_modelopt_nvfp4_t2i"),
        (
            "sglang",
            "sglang_generated/b200/qwen_image_2512_modelopt_nvfp4_t2i_1gpu.jpg"
        )
    );
    assert_eq!(
        pick(&p, "qwen_image_t2i_cache_dit_scm_config_diffusers_1gpu"),
        ("none", "-")
    );

    // The same answers from GitHub's file list instead of probes.
    let (listed, _) = resolve(&HEAD, Some("b200"), true);
    assert_eq!(picks(&listed), p);
    assert!(
        listed["cases"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("file list of sgl-project/ci-data-diffusion@"),
        "{}",
        listed["cases"][0]
    );
}

#[test]
fn resolve_only_refuses_an_unknown_platform() {
    let cache = tempfile::tempdir().unwrap();
    let out = xtask(cache.path())
        .args(["consistency", "--cases"])
        .arg(suite_path())
        .args(["--resolve-only", "--platform", "a100", "--offline"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("a100"), "{}", stderr(&out));
}

// --- docs/sglang-qwen-gt.md -----------------------------------------------------------------

const PINNED: &str = "4ce5eeb9606e378478b2d0964d83e960af4e88cf";

fn render_doc() -> String {
    let mut doc = String::new();
    doc.push_str(&format!(
        "# Which GT file each SGLang Qwen-Image case uses, and why\n\n\
         Generated by `xtask/tests/sglang_suite.rs` (`UPDATE_EXPECT=1 cargo test -p xtask --test \
         integration sglang_suite` rewrites it): `cargo xtask consistency --cases \
         cases/sglang-qwen-image.toml --resolve-only --json --platform P` against a loopback copy of \
         `{REPO}/{TREE}` (the Qwen file names of the commit, placeholder contents, and \
         `official_generated/case_map.json`'s Qwen entries), answered from GitHub's file list as a \
         raw.githubusercontent.com root is; URLs are shown as they are on GitHub.\n\n\
         **The suite's pin is not in this table.** `cases/sglang-qwen-image.toml` pins upstream's \
         `SGL_TEST_FILES_CI_DATA_REVISION` = `{PINNED}`; that commit is not in the mirror of \
         {REPO} available here (its history holds 14 commits, 2026-07-21 to 2026-07-24, main at \
         `{}`), and GitHub cannot be reached from here. The answer for the pin is one command away \
         on a machine with network: `cargo xtask consistency --cases cases/sglang-qwen-image.toml \
         --resolve-only [--platform h100|b200|5090]`. The mirror's newest and oldest commits \
         below show how much the answer depends on the commit: on 2026-07-24 SGLang's own h100 \
         outputs were published for every Qwen case, and from then on an h100 run compares with \
         them rather than with the official diffusers GT, because upstream tries the platform \
         folder before bare names.\n\n\
         Every case is compared as its output format says: jpg outputs after PIL's \
         `save(quality=75)` and decode (libjpeg-turbo), the GT decoded as PIL decodes it; png as \
         pixels. Skipped cases are resolved all the same (they are listed, not run).\n",
        HEAD.commit
    ));
    for snap in [&HEAD, &SEED] {
        let platforms = ["h100", "b200", "5090"];
        let runs: Vec<_> = platforms
            .iter()
            .map(|p| resolve_at(snap, Some(p), true))
            .collect();
        doc.push_str(&format!(
            "\n## Summary at `{}` ({})\n\n| case | h100 | b200 | 5090 |\n|---|---|---|---|\n",
            snap.commit, snap.date
        ));
        for (i, c) in runs[0].0["cases"].as_array().unwrap().iter().enumerate() {
            let cell = |run: &(serde_json::Value, Output, String)| {
                let c = &run.0["cases"][i];
                match c["file"].as_str() {
                    Some(f) => format!("`{f}`"),
                    None => "none".into(),
                }
            };
            let skip = if c["skipped"].is_null() {
                ""
            } else {
                " (skipped)"
            };
            doc.push_str(&format!(
                "| `{}`{skip} | {} | {} | {} |\n",
                c["id"].as_str().unwrap(),
                cell(&runs[0]),
                cell(&runs[1]),
                cell(&runs[2])
            ));
        }
        for (platform, (json, _, base)) in platforms.iter().zip(&runs) {
            doc.push_str(&format!(
                "\n## {platform} at `{}` ({})\n\n\
                 | case | GT file | source | why |\n|---|---|---|---|\n",
                snap.commit, snap.date
            ));
            for c in json["cases"].as_array().unwrap() {
                let id = c["id"].as_str().unwrap();
                let id = match c["skipped"].as_str() {
                    Some(_) => format!("`{id}` (skipped)"),
                    None => format!("`{id}`"),
                };
                let file = match c["file"].as_str() {
                    Some(f) => format!(
                        "[`{f}`](https://raw.githubusercontent.com/{REPO}/{}/{TREE}/{f})",
                        snap.commit
                    ),
                    None => "none".into(),
                };
                // The loopback copy stands for raw.githubusercontent.com; the file-list note is
                // the same for every case (said once, above).
                let mut reason = c["reason"]
                    .as_str()
                    .unwrap()
                    .replace(base.as_str(), "https://raw.githubusercontent.com");
                let note = "; existence answered from the file list of ";
                if let Some(start) = reason.find(note) {
                    let end = reason[start..]
                        .find("no probe needed)")
                        .map_or(reason.len(), |e| start + e + "no probe needed)".len());
                    reason.replace_range(start..end, "");
                }
                let reason = reason.replace('|', "\\|");
                doc.push_str(&format!(
                    "| {id} | {file} | {} | {reason} |\n",
                    c["source"].as_str().unwrap()
                ));
            }
        }
    }
    doc
}

#[test]
fn the_committed_gt_report_is_what_the_resolver_says() {
    let path = root().join("docs/sglang-qwen-gt.md");
    let want = render_doc();
    if std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/sglang-qwen-gt.md is stale: rerun with UPDATE_EXPECT=1 and review the diff"
    );
}

// --- The runner: JPEG as PIL sees it, skipped cases -----------------------------------------

#[test]
fn a_jpg_case_is_compared_after_pils_round_trip_and_skips_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    // GT as upstream publishes a jpg case: the reference image saved as PIL's save(quality=75)
    // (image-io's encoder is byte-identical with PIL's, crates/image-io/tests/pil_parity.rs).
    let gt = dir.path().join("gt/official_generated");
    std::fs::create_dir_all(&gt).unwrap();
    let reference =
        image_io::load(testdata().join("gt/official_generated/tiny_t2i_cfg_1gpu.png")).unwrap();
    let jpeg = image_io::encode_jpeg(&reference, image_io::JpegOptions::default()).unwrap();
    std::fs::write(gt.join("tiny_jpg_1gpu.jpg"), &jpeg).unwrap();
    std::fs::write(
        gt.join("case_map.json"),
        r#"{"cases": {"tiny_jpg": {"outputs": ["tiny_jpg_1gpu.jpg"]}}}"#,
    )
    .unwrap();
    let cases = dir.path().join("cases.toml");
    let model = testdata().join("tiny-qwen-image");
    let latents = testdata().join("e2e/latents/tiny_t2i_cfg.safetensors");
    std::fs::write(
        &cases,
        format!(
            "[[case]]\nid = \"tiny_jpg\"\nmodel = {model:?}\nprompt = \"Doraemon is eating dorayaki\"\n\
             negative_prompt = \" \"\ntrue_cfg_scale = 4.0\nheight = 64\nwidth = 64\n\
             num_inference_steps = 6\nlatents = {latents:?}\noutput_format = \"jpg\"\n\n\
             [[case]]\nid = \"tiny_two_gpus\"\nmodel = {model:?}\nprompt = \"x\"\nnum_gpus = 2\n\
             skip = \"two GPUs with ring attention: not in this port\"\n"
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = xtask(dir.path())
        .args(["consistency", "--no-clip", "--cases"])
        .arg(&cases)
        .arg("--gt-root")
        .arg(dir.path().join("gt"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(
        (&report["passed"], &report["failed"], &report["skipped"]),
        (&1.into(), &0.into(), &1.into())
    );
    let case = |id: &str| {
        report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    let jpg = case("tiny_jpg");
    assert!(
        jpg["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("save(quality=75) and decoded back")),
        "{jpg}"
    );
    // Our output equals diffusers' image, so after the same encoder and decoder it equals the
    // GT to the last value (compared raw, JPEG's loss would cost ~10 dB).
    let m = &jpg["metrics"][0];
    assert!(
        m["psnr"] == "inf" || m["psnr"].as_f64().unwrap() > 50.0,
        "{m}"
    );
    let raw = metrics::PixelMetrics::compute(
        &metrics::load_rgb(&testdata().join("gt/official_generated/tiny_t2i_cfg_1gpu.png"))
            .unwrap(),
        &metrics::load_rgb(&gt.join("tiny_jpg_1gpu.jpg")).unwrap(),
    )
    .unwrap();
    assert!(raw.psnr < 45.0, "JPEG loss: {}", raw.psnr);
    // The written output is the JPEG a PIL save would write.
    let written = std::fs::read(out_dir.join("cases/tiny_jpg/output.jpg")).unwrap();
    assert_eq!(&written[..3], b"\xff\xd8\xff");

    let skipped = case("tiny_two_gpus");
    assert_eq!(
        skipped["skip_reason"],
        "two GPUs with ring attention: not in this port"
    );
    assert_eq!(skipped["passed"], false);
    let html = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(html.contains("SKIPPED") && html.contains("1 skipped"));
}

// --- generate --generator -------------------------------------------------------------------

/// diffusers' `_pack_latents` of `(1, z, h, w)` values: 2×2 patches, channels innermost.
fn pack(v: &[f32], z: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(v.len());
    for i in 0..h / 2 {
        for j in 0..w / 2 {
            for c in 0..z {
                for di in 0..2 {
                    for dj in 0..2 {
                        out.push(v[(c * h + 2 * i + di) * w + 2 * j + dj]);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn generate_draws_the_seed_from_the_chosen_generator() {
    let dir = tempfile::tempdir().unwrap();
    let model = testdata().join("tiny-qwen-image");
    // 64×48 → latents (1, 1, z, 8, 6); the tiny VAE's z is read from its config.
    let vae: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("vae/config.json")).unwrap())
            .unwrap();
    let z = vae["z_dim"].as_u64().unwrap() as usize;
    let (h, w) = (8, 6);
    let noise = CudaGenerator::new(42, CudaPlatform::B200).randn_f32(z * h * w);
    let packed = pack(&noise, z, h, w);
    let bytes: Vec<u8> = packed.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![1, (h / 2) * (w / 2), 4 * z],
        &bytes,
    )
    .unwrap();
    let latents = dir.path().join("latents.safetensors");
    safetensors::serialize_to_file([("latents", view)], None, &latents).unwrap();

    let run = |extra: &[&str], out: &str| {
        let o = xtask(dir.path())
            .args(["generate", "--model"])
            .arg(&model)
            .args([
                "--prompt",
                "A lighthouse",
                "--steps",
                "2",
                "--height",
                "64",
                "--width",
                "48",
                "--out",
            ])
            .arg(dir.path().join(out))
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        (
            image::open(dir.path().join(out)).unwrap().to_rgb8(),
            stderr(&o),
        )
    };
    let (from_seed, log) = run(
        &["--seed", "42", "--generator", "cuda", "--platform", "b200"],
        "seed.png",
    );
    assert!(log.contains("generator torch-cuda:b200"), "{log}");
    let (from_file, _) = run(&["--latents", latents.to_str().unwrap()], "file.png");
    assert_eq!(
        from_seed, from_file,
        "the seed draws diffusers' shape, then packs"
    );
    let (cpu, log) = run(&["--seed", "42"], "cpu.png");
    assert!(log.contains("generator torch-cpu"), "{log}");
    assert_ne!(cpu, from_seed, "the CPU generator draws other noise");

    let o = xtask(dir.path())
        .args(["generate", "--model"])
        .arg(&model)
        .args([
            "--prompt",
            "x",
            "--seed",
            "1",
            "--platform",
            "b200",
            "--out",
        ])
        .arg(dir.path().join("never.png"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--generator cuda"), "{}", stderr(&o));
    assert!(!dir.path().join("never.png").exists());
}

#[test]
fn input_images_given_as_urls_come_through_the_gt_cache() {
    let dir = tempfile::tempdir().unwrap();
    let image = std::fs::read(testdata().join("e2e-edit/edit_input.jpg")).unwrap();
    let server = Server::files(BTreeMap::from([("img/edit_input.jpg".to_string(), image)]));
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        format!(
            "[[case]]\nid = \"tiny_edit_cfg\"\nmodel = {:?}\nimage = \"{}/img/edit_input.jpg\"\n\
             prompt = \"Make the sky a deep purple and add a small red kite\"\n\
             negative_prompt = \" \"\ntrue_cfg_scale = 4.0\nheight = 48\nwidth = 80\n\
             num_inference_steps = 2\nlatents = {:?}\noutput_format = \"png\"\n",
            testdata().join("tiny-qwen-image-edit"),
            server.base,
            testdata().join("e2e-edit/latents/tiny_edit_cfg.safetensors"),
        ),
    )
    .unwrap();
    let run = |offline: bool| {
        let mut cmd = xtask(dir.path());
        cmd.args(["consistency", "--no-clip", "--cases"])
            .arg(&cases)
            .arg("--gt-root")
            .arg(testdata().join("gt"))
            .arg("--out")
            .arg(dir.path().join("out"));
        if offline {
            cmd.arg("--offline");
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["passed"], 1, "{report}");
    };
    run(false);
    let fetched = server.requests.load(Ordering::SeqCst);
    assert!(fetched >= 1);
    // Offline, the image is served from the cache: the server hears nothing more.
    run(true);
    assert_eq!(server.requests.load(Ordering::SeqCst), fetched);
}
