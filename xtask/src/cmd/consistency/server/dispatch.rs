//! Cases spread over servers: one worker thread per request slot of each server (`--per-server`),
//! each taking the first waiting case its server serves; the outcomes are read back in case
//! order. A server found gone (refused, or dropped a connection before answering) takes no more
//! cases; the case it had goes once to another server of its model, and cases left with no live
//! server could not run. Nothing waits for a server that is gone.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::client::CallError;

/// What became of one case.
#[derive(Debug, Clone)]
pub(crate) enum Outcome<T> {
    /// Answered, by `server`.
    Done { value: T, server: usize },
    /// The engine misbehaved on `server`.
    Failed { why: String, server: usize },
    /// No server could take it.
    CouldNotRun(String),
}

/// One attempt that found its server gone: `(server, why)`.
pub(crate) type Miss = (usize, String);

/// The shared queue.
struct State<T> {
    /// Cases waiting, in case order (a case given back goes to the front).
    pending: VecDeque<usize>,
    /// Per case: the servers that may take it.
    eligible: Vec<Vec<usize>>,
    /// Per case: the servers it found gone.
    misses: Vec<Vec<Miss>>,
    /// Per server: why it is gone.
    down: Vec<Option<String>>,
    results: Vec<Option<Outcome<T>>>,
    /// How many cases are decided (their outcome may have been read already).
    decided: usize,
    /// Server names (URLs) for messages.
    names: Vec<String>,
}

/// The workers and their queue.
pub(crate) struct Pool<T> {
    shared: Arc<(Mutex<State<T>>, Condvar)>,
}

/// The call a worker makes: `(server, case)` to an answer.
pub(crate) type Call<T> = dyn Fn(usize, usize) -> Result<T, CallError> + Send + Sync;

impl<T: Send + 'static> Pool<T> {
    /// Start `slots[s]` workers for server `s` (none for a server already `down`); case `i` may
    /// go to the servers `eligible[i]`. A case with no live server is decided at once.
    pub fn start(
        eligible: Vec<Vec<usize>>,
        names: Vec<String>,
        down: Vec<Option<String>>,
        slots: usize,
        call: Arc<Call<T>>,
    ) -> Self {
        let n = eligible.len();
        let mut state = State {
            pending: (0..n).collect(),
            misses: vec![Vec::new(); n],
            results: (0..n).map(|_| None).collect(),
            decided: 0,
            eligible,
            down,
            names,
        };
        state.strand();
        let shared = Arc::new((Mutex::new(state), Condvar::new()));
        let servers = lock(&shared.0).names.len();
        for server in 0..servers {
            if lock(&shared.0).down[server].is_some() {
                continue;
            }
            for _ in 0..slots {
                let (shared, call) = (shared.clone(), call.clone());
                std::thread::spawn(move || work(&shared, server, &*call));
            }
        }
        Self { shared }
    }

    /// Case `i`'s outcome and the servers it found gone on the way, once decided.
    pub fn wait(&self, i: usize) -> (Outcome<T>, Vec<Miss>) {
        let (m, cv) = &*self.shared;
        let mut st = lock(m);
        loop {
            if let Some(o) = st.results[i].take() {
                return (o, std::mem::take(&mut st.misses[i]));
            }
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One worker of `server`: take a case, call, record; stop when the server is gone or every
/// case is decided.
fn work<T>(shared: &(Mutex<State<T>>, Condvar), server: usize, call: &Call<T>) {
    let (m, cv) = shared;
    loop {
        let case = {
            let mut st = lock(m);
            loop {
                if st.down[server].is_some() || st.decided == st.eligible.len() {
                    return;
                }
                if let Some(pos) = st.pending.iter().position(|&i| st.takes(server, i)) {
                    break st.pending.remove(pos).unwrap_or_default();
                }
                st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = call(server, case);
        let mut st = lock(m);
        match result {
            Ok(value) => st.decide(case, Outcome::Done { value, server }),
            Err(CallError::Failed(why)) => st.decide(case, Outcome::Failed { why, server }),
            Err(CallError::Unreachable(why)) => {
                st.misses[case].push((server, why.clone()));
                st.down[server] = Some(why);
                // Retried once on another server: the second miss decides.
                if st.misses[case].len() >= 2 {
                    let msg = st.gone_message(case);
                    st.decide(case, Outcome::CouldNotRun(msg));
                } else {
                    st.pending.push_front(case);
                }
                st.strand();
            }
        }
        cv.notify_all();
    }
}

impl<T> State<T> {
    /// Whether `server` may take case `i` now.
    fn takes(&self, server: usize, i: usize) -> bool {
        self.eligible[i].contains(&server) && !self.misses[i].iter().any(|(s, _)| *s == server)
    }

    /// Decide every waiting case that no live server can take any more.
    fn strand(&mut self) {
        let stranded: Vec<usize> = self
            .pending
            .iter()
            .copied()
            .filter(|&i| {
                !self.eligible[i]
                    .iter()
                    .any(|&s| self.down[s].is_none() && self.takes(s, i))
            })
            .collect();
        for i in stranded {
            self.pending.retain(|&j| j != i);
            let msg = self.gone_message(i);
            self.decide(i, Outcome::CouldNotRun(msg));
        }
    }

    fn decide(&mut self, i: usize, outcome: Outcome<T>) {
        self.results[i] = Some(outcome);
        self.decided += 1;
    }

    /// Why case `i` could not run: each of its servers and why it is gone.
    fn gone_message(&self, i: usize) -> String {
        let said: Vec<String> = self.eligible[i]
            .iter()
            .map(|&s| {
                let why = self.misses[i]
                    .iter()
                    .find(|(m, _)| *m == s)
                    .map(|(_, w)| w.as_str())
                    .or(self.down[s].as_deref())
                    .unwrap_or("not tried");
                format!("{}: {why}", self.names[s])
            })
            .collect();
        format!("no server of its model could take it ({})", said.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|s| format!("s{s}")).collect()
    }

    #[test]
    fn a_gone_server_hands_its_case_to_another_and_cases_come_back_in_order() {
        // Server 0 is gone at its first call; server 1 answers everything.
        let call: Arc<Call<usize>> = Arc::new(|server, case| match server {
            0 => Err(CallError::Unreachable("connection refused".into())),
            _ => Ok(case * 10),
        });
        let pool = Pool::start(vec![vec![0, 1]; 5], names(2), vec![None, None], 1, call);
        for i in 0..5 {
            match pool.wait(i).0 {
                Outcome::Done { value, server } => assert_eq!((value, server), (i * 10, 1)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_case_whose_only_server_is_gone_could_not_run_and_the_others_go_on() {
        let call: Arc<Call<usize>> = Arc::new(|server, case| match server {
            0 => Err(CallError::Unreachable("connection refused".into())),
            _ => Ok(case),
        });
        let pool = Pool::start(
            vec![vec![0], vec![1], vec![0]],
            names(2),
            vec![None, None],
            2,
            call,
        );
        assert!(
            matches!(pool.wait(0).0, Outcome::CouldNotRun(m) if m.contains("s0: connection refused"))
        );
        assert!(matches!(pool.wait(1).0, Outcome::Done { value: 1, .. }));
        assert!(matches!(pool.wait(2).0, Outcome::CouldNotRun(_)));
    }

    #[test]
    fn a_failure_is_not_retried_and_a_down_server_gets_no_worker() {
        let call: Arc<Call<usize>> = Arc::new(|_, _| Err(CallError::Failed("HTTP 500".into())));
        let pool = Pool::start(
            vec![vec![0, 1]],
            names(2),
            vec![Some("gone".into()), None],
            1,
            call,
        );
        assert!(matches!(pool.wait(0).0, Outcome::Failed { server: 1, .. }));
    }
}
