//! One worker thread owns the engine (and so the device); requests wait in a bounded queue.
//! A request admitted is a [`Job`]; the worker runs its outputs one after another, each under
//! `catch_unwind` so that a panic answers 500 and the next job still runs. Every job carries a
//! cancel flag that its HTTP handler sets when the client goes away or the request times out,
//! and that shutdown sets on every live job; the engine stops within one denoising step, a job
//! still waiting is skipped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use pipeline::Request;
use tokio::sync::{Notify, oneshot};

use crate::engine::{Engine, Generated};
use crate::error::ApiError;
use crate::model::Loaded;

/// Loads the engine, on the worker thread (the engine never leaves it). An error is the message
/// the server exits with.
pub type Loader = Box<dyn FnOnce() -> Result<Box<dyn Engine>, String> + Send>;

/// Where the model is.
#[derive(Debug, Clone)]
pub enum Status {
    Loading,
    Ready(Loaded),
    Failed(String),
}

/// What a job gives back.
#[derive(Debug)]
pub struct Done {
    pub outputs: Vec<Generated>,
    /// Time between admission and the worker taking the job.
    pub queue_wait: Duration,
    /// Time the worker spent on it.
    pub run: Duration,
}

/// Why a job gave nothing.
#[derive(Debug)]
pub enum JobError {
    /// Its cancel flag was set (client gone, timeout, shutdown).
    Cancelled,
    /// The pipeline refused or failed.
    Failed(pipeline::Error),
    /// The engine panicked (the message).
    Panicked(String),
}

struct Job {
    requests: Vec<Request>,
    cancel: Arc<AtomicBool>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Done, JobError>>,
}

/// The queue in front of the worker, shared by the handlers.
pub struct Queue {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    /// Jobs admitted and not finished (waiting + running).
    pending: AtomicUsize,
    /// `--max-queue` + the running one.
    capacity: usize,
    running: AtomicBool,
    live: Mutex<Vec<Weak<AtomicBool>>>,
    status: Mutex<Status>,
    /// Signalled when the status leaves `Loading`.
    pub loaded: Notify,
    /// Moving average of a job's run time in seconds (for `Retry-After`).
    avg_run: Mutex<f64>,
}

impl Queue {
    /// Start the worker thread: it runs `loader`, then the jobs. `max_queue` jobs may wait
    /// behind the running one. `model` is `--model` as given (it picks SGLang's defaults).
    pub fn start(max_queue: usize, model: String, loader: Loader) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel();
        let queue = Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            pending: AtomicUsize::new(0),
            capacity: max_queue.saturating_add(1),
            running: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
            status: Mutex::new(Status::Loading),
            loaded: Notify::new(),
            avg_run: Mutex::new(1.0),
        });
        let q = queue.clone();
        std::thread::Builder::new()
            .name("qwen-serve-worker".into())
            .spawn(move || q.work(rx, &model, loader))?;
        Ok(queue)
    }

    /// The model's status.
    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Jobs waiting (not the running one).
    pub fn waiting(&self) -> usize {
        let pending = self.pending.load(Ordering::SeqCst);
        pending.saturating_sub(usize::from(self.running.load(Ordering::SeqCst)))
    }

    /// Admit a job of `requests` under `cancel`, or refuse it with 503 when `--max-queue` jobs
    /// already wait (or the server is stopping).
    pub fn submit(
        &self,
        requests: Vec<Request>,
        cancel: Arc<AtomicBool>,
    ) -> Result<oneshot::Receiver<Result<Done, JobError>>, ApiError> {
        let admitted = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                (p < self.capacity).then_some(p + 1)
            });
        if admitted.is_err() {
            let wait = *lock(&self.avg_run) * self.capacity as f64;
            return Err(ApiError::unavailable(
                "queue_full",
                format!(
                    "the server is busy: {} request(s) already wait (--max-queue); retry later",
                    self.capacity - 1
                ),
                wait.ceil().max(1.0) as u64,
            ));
        }
        let (reply, rx) = oneshot::channel();
        {
            let mut live = lock(&self.live);
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&cancel));
        }
        let job = Job {
            requests,
            cancel,
            enqueued: Instant::now(),
            reply,
        };
        let sent = lock(&self.tx).as_ref().map(|tx| tx.send(job));
        if !matches!(sent, Some(Ok(()))) {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::unavailable(
                "shutting_down",
                "the server is stopping",
                1,
            ));
        }
        Ok(rx)
    }

    /// Stop taking jobs and cancel every live one (shutdown).
    pub fn close(&self) {
        lock(&self.tx).take();
        for w in lock(&self.live).drain(..) {
            if let Some(flag) = w.upgrade() {
                flag.store(true, Ordering::SeqCst);
            }
        }
    }

    fn set_status(&self, s: Status) {
        *lock(&self.status) = s;
        self.loaded.notify_waiters();
        self.loaded.notify_one();
    }

    /// The worker thread: load, then run jobs until the queue is closed.
    fn work(&self, rx: mpsc::Receiver<Job>, model: &str, loader: Loader) {
        let mut engine = match catch_unwind(AssertUnwindSafe(loader)) {
            Ok(Ok(e)) => e,
            Ok(Err(msg)) => return self.set_status(Status::Failed(msg)),
            Err(p) => return self.set_status(Status::Failed(panic_message(p.as_ref()))),
        };
        self.set_status(Status::Ready(Loaded::new(model, engine.kind())));
        while let Ok(job) = rx.recv() {
            let queue_wait = job.enqueued.elapsed();
            self.running.store(true, Ordering::SeqCst);
            let started = Instant::now();
            let result = run_job(engine.as_mut(), &job);
            let run = started.elapsed();
            if result.is_ok() {
                let mut avg = lock(&self.avg_run);
                *avg = 0.7 * *avg + 0.3 * run.as_secs_f64();
            }
            self.running.store(false, Ordering::SeqCst);
            self.pending.fetch_sub(1, Ordering::SeqCst);
            let _ = job.reply.send(result.map(|outputs| Done {
                outputs,
                queue_wait,
                run,
            }));
        }
    }
}

/// Run a job's outputs in order, stopping at the first cancel, error or panic.
fn run_job(engine: &mut dyn Engine, job: &Job) -> Result<Vec<Generated>, JobError> {
    let mut outputs = Vec::with_capacity(job.requests.len());
    for req in &job.requests {
        if job.cancel.load(Ordering::SeqCst) {
            return Err(JobError::Cancelled);
        }
        match catch_unwind(AssertUnwindSafe(|| engine.generate(req, &job.cancel))) {
            Ok(Ok(g)) => outputs.push(g),
            Ok(Err(pipeline::Error::Cancelled { .. })) => return Err(JobError::Cancelled),
            Ok(Err(e)) => return Err(JobError::Failed(e)),
            Err(p) => return Err(JobError::Panicked(panic_message(p.as_ref()))),
        }
    }
    Ok(outputs)
}

/// What a caught panic said.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// A poisoned lock only means a thread panicked while holding it; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
