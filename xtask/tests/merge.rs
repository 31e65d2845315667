//! `consistency merge` with hostile reports (issue: hostile input, round three): a report is data;
//! its case ids and file names are checked, the output may not be an input, and a refused merge
//! writes nothing.

use std::path::Path;

use serde_json::json;

use crate::common::{stderr, xtask};

/// A finished run folder with one case `id` whose report names `output` and `inputs`, and a
/// 4-byte `cases/<safe id>/output.png` when the id is safe.
fn fake_run(dir: &Path, id: &str, output: &str, inputs: &[&str], complete: bool) {
    let case = json!({
        "id": id, "passed": true, "gt_source": "official", "gt_files": [],
        "metrics": [], "thresholds": null, "failures": [],
        "output": output, "inputs": inputs,
    });
    let report = json!({"passed": 1, "failed": 0, "complete": complete, "cases": [case]});
    std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    if cases::valid_id(id) {
        let case_dir = dir.join("cases").join(id);
        std::fs::create_dir_all(&case_dir).unwrap();
        std::fs::write(case_dir.join("output.png"), b"\x89PNG").unwrap();
    }
}

fn merge(inputs: &[&Path], out: &Path) -> std::process::Output {
    let mut c = xtask();
    c.args(["consistency", "merge"]);
    for i in inputs {
        c.arg(i);
    }
    c.arg("--out").arg(out).output().unwrap()
}

#[test]
fn merging_a_run_into_itself_is_refused_and_keeps_its_files() {
    let run = tempfile::tempdir().unwrap();
    fake_run(run.path(), "a", "cases/a/output.png", &[], true);
    let o = merge(&[run.path()], run.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("one of the runs"), "{}", stderr(&o));
    let png = std::fs::read(run.path().join("cases/a/output.png")).unwrap();
    assert_eq!(png, b"\x89PNG");
}

#[test]
fn case_ids_and_file_names_from_a_report_cannot_leave_the_output_folder() {
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("keep.txt"), b"precious").unwrap();
    let abs = victim.path().to_str().unwrap().to_string();
    let secret = victim.path().join("keep.txt");
    for (id, output, inputs) in [
        (abs.as_str(), "cases/a/output.png", vec![]),
        ("../../x", "cases/a/output.png", vec![]),
        ("a", "../../../etc/passwd", vec![]),
        ("a", "cases/a/output.png", vec![secret.to_str().unwrap()]),
        ("a", "cases/a/../../report.json", vec![]),
    ] {
        let run = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        fake_run(run.path(), id, output, &inputs, true);
        let o = merge(&[run.path()], &out.path().join("merged"));
        assert_eq!(o.status.code(), Some(2), "{id} {output}: {}", stderr(&o));
        assert!(
            !out.path().join("merged").exists(),
            "{id}: a refused merge wrote files"
        );
        assert_eq!(std::fs::read(&secret).unwrap(), b"precious");
    }
}

#[test]
fn a_partial_run_merged_is_partial() {
    let (a, b, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    fake_run(a.path(), "a", "cases/a/output.png", &[], true);
    fake_run(b.path(), "b", "cases/b/output.png", &[], false);
    let o = merge(&[a.path(), b.path()], out.path());
    assert!(o.status.code().is_some(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["complete"], false);
    assert_eq!(
        std::fs::read(out.path().join("cases/b/output.png")).unwrap(),
        b"\x89PNG"
    );
}

#[test]
fn a_report_that_is_a_device_or_a_folder_is_refused_by_name() {
    let run = tempfile::tempdir().unwrap();
    std::fs::create_dir(run.path().join("report.json")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = merge(&[run.path()], &out.path().join("m"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is a folder"), "{}", stderr(&o));
}
