//! Given the schedules that diffusers' scheduler produced when driven exactly as QwenImagePipeline
//! drives it (testdata/scheduler, made by xtask/reference/gen_scheduler_cfg.py), our sigmas and
//! timesteps match within 1e-6 (today they are bit-identical) and our Euler step matches
//! `scheduler.step`.

use flow_match::{SchedulerConfig, SchedulerError, euler_step};
use parity_support::{Goldens, max_rel_err, testdata};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    config: String,
    num_steps: usize,
    image_seq_len: usize,
    sigmas: Option<Vec<f64>>,
}

/// The oracle's schedules, Euler steps and (in metadata) their cases.
fn goldens() -> Goldens {
    Goldens::testdata("scheduler/schedules.safetensors")
}

fn cases(goldens: &Goldens) -> Vec<Case> {
    serde_json::from_value(goldens.metadata_json("cases")).unwrap()
}

fn config(file: &str) -> SchedulerConfig {
    SchedulerConfig::from_file(testdata("scheduler").join(file)).unwrap()
}

#[test]
fn every_oracle_schedule_is_reproduced_within_1e_6() {
    let goldens = goldens();
    let cases = cases(&goldens);
    assert!(cases.len() >= 10, "expected the full case list");
    for case in cases
        .iter()
        .filter(|c| c.num_steps > 1 || c.sigmas.is_some())
    {
        let cfg = config(&case.config);
        let schedule = match &case.sigmas {
            None => cfg.schedule(case.num_steps, case.image_seq_len),
            Some(s) => cfg.schedule_with_sigmas(s, case.image_seq_len),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let sigmas = goldens.f32(&format!("{}.sigmas", case.name)).0;
        let timesteps = goldens.f32(&format!("{}.timesteps", case.name)).0;
        assert_eq!(schedule.num_steps(), case.num_steps, "{}", case.name);
        let es = max_rel_err(&schedule.sigmas, &sigmas);
        let et = max_rel_err(&schedule.timesteps, &timesteps);
        assert!(es <= 1e-6, "{}: sigmas differ by {es}", case.name);
        assert!(et <= 1e-6, "{}: timesteps differ by {et}", case.name);
        assert_eq!(*schedule.sigmas.last().unwrap(), 0.0, "{}", case.name);
        if cfg.use_dynamic_shifting {
            let mu = goldens.f64(&format!("{}.mu", case.name)).0[0];
            let ours = schedule.mu.expect("dynamic shifting reports μ");
            assert!(
                (ours - mu).abs() <= 1e-12,
                "{}: μ {ours} vs {mu}",
                case.name
            );
        } else {
            assert_eq!(schedule.mu, None, "{}", case.name);
        }
    }
}

#[test]
fn the_model_notes_reference_table_holds() {
    // §2.7 of the model notes (six decimals); the oracle agrees (test above).
    let cfg = config("qwen_image.json");
    type Row<'a> = (usize, usize, f64, &'a [f32], &'a [f32]);
    let rows: [Row; 4] = [
        (
            50,
            4096,
            0.693548,
            &[1.0, 0.989701, 0.979191, 0.968465, 0.957516],
            &[0.095499, 0.058476, 0.02],
        ),
        (
            50,
            6889,
            0.834325,
            &[1.0, 0.990988, 0.981768, 0.972332, 0.962672],
            &[0.105449, 0.063783, 0.02],
        ),
        (
            50,
            6032,
            0.791129,
            &[1.0, 0.990612, 0.981014, 0.971199, 0.961160],
            &[0.102282, 0.062088, 0.02],
        ),
        (4, 1024, 0.538710, &[1.0, 0.749268, 0.432588, 0.02], &[]),
    ];
    for (n, seq, mu, head, tail) in rows {
        let s = cfg.schedule(n, seq).unwrap();
        assert!((s.mu.unwrap() - mu).abs() < 1e-6, "{seq}: μ {:?}", s.mu);
        let body = &s.sigmas[..n];
        for (a, b) in body.iter().zip(head) {
            assert!((a - b).abs() < 1e-6, "{seq}: head {body:?}");
        }
        for (a, b) in body[n - tail.len()..].iter().zip(tail) {
            assert!((a - b).abs() < 1e-6, "{seq}: tail {body:?}");
        }
    }
    let s = cfg.schedule(50, 4096).unwrap();
    assert!((s.timesteps[1] - 989.7009).abs() < 1e-3);
}

#[test]
fn a_single_step_is_an_error_where_diffusers_returns_nan() {
    let goldens = goldens();
    assert!(
        goldens.f32("qwen_1024x1024_1.sigmas").0[0].is_nan(),
        "upstream quirk"
    );
    let err = config("qwen_image.json").schedule(1, 4096).unwrap_err();
    assert!(
        matches!(err, SchedulerError::NonFinite { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn euler_steps_match_scheduler_step() {
    let goldens = goldens();
    let case_name = goldens.metadata("euler_case");
    let case = cases(&goldens)
        .into_iter()
        .find(|c| c.name == case_name)
        .unwrap();
    let schedule = config(&case.config)
        .schedule(case.num_steps, case.image_seq_len)
        .unwrap();

    let mut x = goldens.f32("euler.sample").0;
    let velocities = goldens.f32("euler.velocities").0;
    let outputs = goldens.f32("euler.outputs").0;
    let len = x.len();
    for step in schedule.steps() {
        let v = &velocities[step.index * len..(step.index + 1) * len];
        euler_step(&mut x, v, step.dt).unwrap();
        let expected = &outputs[step.index * len..(step.index + 1) * len];
        let err = max_rel_err(&x, expected);
        assert!(err <= 1e-6, "step {}: {err}", step.index);
    }
}

#[test]
fn the_released_config_is_the_qwen_image_preset() {
    let released = testdata("tiny-qwen-image/scheduler/scheduler_config.json");
    assert_eq!(
        SchedulerConfig::from_file(released).unwrap(),
        SchedulerConfig::qwen_image()
    );
}

#[test]
fn config_errors_name_the_file() {
    let missing = testdata("scheduler/no-such-config.json");
    let err = SchedulerConfig::from_file(&missing).unwrap_err();
    assert!(err.to_string().contains("no-such-config.json"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad_config.json");
    std::fs::write(&bad, r#"{"time_shift_type": "cosine"}"#).unwrap();
    let err = SchedulerConfig::from_file(&bad).unwrap_err();
    assert!(
        matches!(err, SchedulerError::Parse { .. }) && err.to_string().contains("bad_config.json"),
        "{err}"
    );

    let karras = dir.path().join("karras_config.json");
    std::fs::write(&karras, r#"{"use_karras_sigmas": true}"#).unwrap();
    let err = SchedulerConfig::from_file(&karras).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("karras_config.json") && msg.contains("use_karras_sigmas"),
        "{msg}"
    );
}

#[test]
fn in_memory_configs_are_validated_before_scheduling() {
    let cfg = SchedulerConfig {
        max_image_seq_len: 256,
        ..SchedulerConfig::qwen_image()
    };
    let err = cfg.schedule(10, 4096).unwrap_err();
    assert!(matches!(err, SchedulerError::InvalidConfig { .. }), "{err}");
}
