//! `--server URL …`: servers that speak SGLang's image API as the [`Target`]. Before the first
//! case (`setup`) each server's `/health` is waited for and its `/v1/models` read, each case is
//! routed to the servers that serve its model (`routing`) and built into one request (`request`),
//! and a warm-up request per server goes first, outside any timing; then a pool of workers, one
//! per request slot of each server, sends the cases (`dispatch`, `client`), and each answer is
//! read back in case order as the case's output (`answer`).
//!
//! Verdicts: an error status, a body that is not an image or no answer in time fails the case
//! ([`Misbehaved`]); a refused or dropped connection sends it once to another server of its
//! model, then it could not run. A case with `latents` cannot be sent (skipped, with why); a case
//! whose model no server lists is skipped when every server is up, and could not run otherwise.

mod answer;
mod client;
mod dispatch;
mod request;
mod routing;
mod setup;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use cases::Case;

use super::perf::Baseline;
use super::report::{CaseReport, PerfReport, TargetReport};
use super::settings::Settings;
use super::target::{Misbehaved, Produced, Target};
use crate::util::save_image;
use client::Answer;
use dispatch::{Miss, Outcome, Pool};
use routing::Server;
use setup::{Prepared, with_model};

/// What became of one case's request, for its report.
#[derive(Default)]
struct Record {
    /// The server that answered or failed it.
    server: Option<usize>,
    answer: Option<Answer>,
    misses: Vec<Miss>,
}

/// The servers of a run, working through its cases.
pub(crate) struct ServerTarget {
    servers: Vec<Server>,
    index: HashMap<String, usize>,
    prepared: Arc<Vec<Prepared>>,
    pool: Pool<Answer>,
    records: HashMap<String, Record>,
    perf: Option<Baseline>,
}

impl ServerTarget {
    /// Connect to the servers of the run and start sending `cases`; also gives back the cases
    /// that are not sent, each with why (skipped).
    pub(crate) fn connect(
        s: &Settings,
        cases: &[Case],
    ) -> anyhow::Result<(Self, Vec<(Case, String)>)> {
        let c = setup::connect(s, cases)?;
        let target = Self {
            servers: c.servers,
            index: c.index,
            prepared: c.prepared,
            pool: c.pool,
            records: HashMap::new(),
            perf: c.perf,
        };
        Ok((target, c.skipped))
    }
}

impl Target for ServerTarget {
    fn produce(&mut self, case: &Case, out_dir: &Path) -> anyhow::Result<Produced> {
        let i = *self
            .index
            .get(&case.id)
            .ok_or_else(|| anyhow!("case {} was not prepared", case.id))?;
        let prepared = self.prepared.clone();
        let p = &prepared[i];
        let req = match &p.request {
            Ok(r) => r,
            Err(e) if e.is_empty() => bail!(
                "no server that is up serves its model `{}` ({})",
                case.model,
                routing::listing(&self.servers)
            ),
            Err(e) => bail!("{e}"),
        };
        let mut inputs_rel = Vec::new();
        for (k, path) in p.inputs.iter().enumerate() {
            let rel = format!("cases/{}/input_{k}.png", case.id);
            save_image(
                &pipeline::InputImage::load(path)?.to_rgb(),
                &out_dir.join(&rel),
            )?;
            inputs_rel.push(rel);
        }
        let (outcome, misses) = self.pool.wait(i);
        let record = self.records.entry(case.id.clone()).or_default();
        record.misses = misses;
        match outcome {
            Outcome::Done { value, server } => {
                record.server = Some(server);
                let asked = req
                    .fields
                    .iter()
                    .find(|f| f.0 == "output_format")
                    .and_then(|f| f.1.as_str())
                    .map(|f| if f == "jpeg" { "jpg" } else { f });
                let produced =
                    answer::produced(case, &value, asked, p.layered, inputs_rel, out_dir);
                record.answer = Some(value);
                produced
            }
            Outcome::Failed { why, server } => {
                record.server = Some(server);
                Err(Misbehaved(format!("{}: {why}", self.servers[server].url)).into())
            }
            Outcome::CouldNotRun(why) => bail!("{why}"),
        }
    }

    fn annotate(&mut self, case: &Case, report: &mut CaseReport) {
        let Some(&i) = self.index.get(&case.id) else {
            return;
        };
        let p = &self.prepared[i];
        let record = self.records.remove(&case.id).unwrap_or_default();
        let server = record.server.or(p.routes.first().map(|r| r.0));
        if let Some(k) = server {
            let model = p
                .routes
                .iter()
                .find(|r| r.0 == k)
                .map(|r| r.1.clone())
                .unwrap_or_default();
            report.target = Some(TargetReport::Server {
                url: self.servers[k].url.clone(),
                card: routing::card(&self.servers[k], &model),
                model,
                request_id: record.answer.as_ref().and_then(|a| a.request_id.clone()),
            });
            if let Ok(req) = &p.request {
                report.request = Some(with_model(req, p, k).summary());
            }
        }
        for (k, why) in &record.misses {
            report.notes.push(format!(
                "{} was gone ({why}): the case went to another server of its model",
                self.servers[*k].url
            ));
        }
        let Some(a) = &record.answer else {
            return;
        };
        notes(case, a, report);
        report.timings.request = a.wall.as_secs_f64();
        let e2e_ms = a.wall.as_secs_f64() * 1000.0;
        let timings = answer::server_timings(a);
        report.perf = Some(match &self.perf {
            Some(b) => b.check(&case.id, e2e_ms, timings, case.num_inference_steps),
            None => PerfReport {
                e2e_ms,
                server_timings: timings.cloned(),
                ..PerfReport::default()
            },
        });
    }
}

/// What the answer says beside its image: 503s waited out, fields the server ignored, how a JPEG
/// answer is judged.
fn notes(case: &Case, a: &Answer, report: &mut CaseReport) {
    if a.retries > 0 {
        report.notes.push(format!(
            "the server answered 503 {} time(s) first (retried with back-off)",
            a.retries
        ));
    }
    if let Some(f) = a.ignored.as_deref().filter(|f| !f.is_empty()) {
        report
            .notes
            .push(format!("the server ignored these fields: {f}"));
    }
    if case.output_format == "jpg" {
        report.notes.push("jpg: the server's JPEG as PIL decodes it (libjpeg-turbo), against the GT decoded the same way".into());
    }
}
