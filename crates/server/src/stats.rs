//! `GET /metrics`: Prometheus text, through the Prometheus project's Rust client. Requests by
//! endpoint and status, the queue depth, queue wait and latency histograms, and denoising speed
//! (steps and seconds counted, so `rate()` gives steps/s; the last job's steps/s as a gauge).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: String,
}

/// The server's metrics.
pub struct Stats {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    queue_depth: Gauge,
    queue_wait: Histogram,
    latency: Histogram,
    steps: Counter,
    denoise_seconds: Counter<f64, AtomicU64>,
    steps_per_second: Gauge<f64, AtomicU64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("qwen_serve");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by endpoint and HTTP status (499: the client went away)",
            requests.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Generation jobs waiting behind the running one",
            queue_depth.clone(),
        );
        // 10 ms … ~1.5 h.
        let queue_wait = Histogram::new(exponential_buckets(0.01, 2.0, 20));
        registry.register(
            "queue_wait_seconds",
            "Time a generation job waited for the worker",
            queue_wait.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.01, 2.0, 20));
        registry.register(
            "request_duration_seconds",
            "Time from a generation request's arrival to its answer",
            latency.clone(),
        );
        let steps = Counter::default();
        registry.register("denoise_steps", "Denoising steps run", steps.clone());
        let denoise_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "denoise_seconds",
            "Time spent denoising (rate(steps)/rate(seconds) = steps/s)",
            denoise_seconds.clone(),
        );
        let steps_per_second = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "denoise_steps_per_second",
            "Denoising speed of the last finished generation",
            steps_per_second.clone(),
        );
        Self {
            registry,
            requests,
            queue_depth,
            queue_wait,
            latency,
            steps,
            denoise_seconds,
            steps_per_second,
        }
    }

    /// One answered request.
    pub fn request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// A generation request's total time.
    pub fn latency(&self, secs: f64) {
        self.latency.observe(secs);
    }

    /// A job's wait for the worker.
    pub fn queue_wait(&self, secs: f64) {
        self.queue_wait.observe(secs);
    }

    /// One generation's denoising: `steps` in `secs`.
    pub fn denoised(&self, steps: usize, secs: f64) {
        self.steps.inc_by(steps as u64);
        self.denoise_seconds.inc_by(secs);
        if secs > 0.0 {
            self.steps_per_second.set(steps as f64 / secs);
        }
    }

    /// The text exposition, with the queue depth as it is now.
    pub fn render(&self, waiting: usize) -> String {
        self.queue_depth.set(waiting as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric() {
        let s = Stats::new();
        s.request("generations", 200);
        s.request("generations", 503);
        s.latency(0.5);
        s.queue_wait(0.1);
        s.denoised(10, 2.0);
        let text = s.render(3);
        for m in [
            "qwen_serve_requests_total{endpoint=\"generations\",status=\"503\"} 1",
            "qwen_serve_queue_depth 3",
            "qwen_serve_queue_wait_seconds_bucket",
            "qwen_serve_request_duration_seconds_count 1",
            "qwen_serve_denoise_steps_total 10",
            "qwen_serve_denoise_steps_per_second 5",
        ] {
            assert!(text.contains(m), "{m} missing from\n{text}");
        }
    }
}
