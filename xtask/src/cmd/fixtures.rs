//! `cargo xtask fixtures`: regenerate testdata/ with the pinned Python oracle.
//!
//! The oracle lives in xtask/reference/ (its own requirements.txt, pinned). It runs in its own
//! venv, `.venv-reference/` at the repository root (override with `QWEN_REFERENCE_VENV`), which is
//! created and filled on first use. Tests and CI never need it: its outputs are committed.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

use crate::util::repo_root;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Regenerate only these generators (e.g. `tiny_pipeline dit`); default: all, in order.
    #[arg(long, num_args = 1..)]
    pub only: Vec<String>,
    /// Write here instead of testdata/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Regenerate into a temp folder and compare with the committed testdata/ (bitwise tensors).
    #[arg(long, conflicts_with_all = ["only", "out"])]
    pub check: bool,
}

/// The reference venv's python, creating the venv and installing the pinned requirements if needed.
pub fn reference_python() -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let venv = std::env::var_os("QWEN_REFERENCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-reference"));
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("creating the reference venv in {}", venv.display());
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running python3 -m venv (is Python 3.11+ installed?)")?;
        if !st.success() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    let req = root.join("xtask/reference/requirements.txt");
    let stamp = venv.join(".requirements");
    let want =
        std::fs::read_to_string(&req).with_context(|| format!("reading {}", req.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!(
            "installing the pinned oracle requirements ({})",
            req.display()
        );
        let st = Command::new(&python)
            .args(["-m", "pip", "install", "-r"])
            .arg(&req)
            .status()
            .with_context(|| format!("running {} -m pip", python.display()))?;
        if !st.success() {
            bail!("pip install -r {} failed", req.display());
        }
        std::fs::write(&stamp, want)?;
    }
    Ok(python)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = repo_root();
    let python = reference_python()?;
    let mut cmd = Command::new(&python);
    if args.check {
        cmd.arg(root.join("xtask/reference/check_fixtures.py"));
    } else {
        let out = args.out.unwrap_or_else(|| root.join("testdata"));
        cmd.arg(root.join("xtask/reference/fixtures.py"))
            .arg("--out")
            .arg(out);
        if !args.only.is_empty() {
            cmd.arg("--only").args(&args.only);
        }
    }
    let st = cmd
        .current_dir(&root)
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    Ok(exit_code(&st, &python))
}

/// The oracle's verdict: 0 done, 1 when it ran and failed (a mismatch under `--check`, an
/// exception), 2 when it did not run to its end: killed by a signal (the OOM killer, Ctrl-C,
/// `kill`), which leaves testdata/ half regenerated.
fn exit_code(st: &std::process::ExitStatus, python: &std::path::Path) -> ExitCode {
    if st.success() {
        return ExitCode::SUCCESS;
    }
    if st.code().is_some() {
        return ExitCode::from(1);
    }
    #[cfg(unix)]
    let how = {
        use std::os::unix::process::ExitStatusExt;
        st.signal()
            .map_or_else(|| "killed".to_string(), |s| format!("killed by signal {s}"))
    };
    #[cfg(not(unix))]
    let how = "killed".to_string();
    eprintln!(
        "error: the reference oracle ({}) was {how} before it finished: its outputs may be \
         partial; run `cargo xtask fixtures` again",
        python.display()
    );
    ExitCode::from(2)
}
