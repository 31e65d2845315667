//! A CLIP model that cannot be had is `Error::ModelUnavailable` (callers report CLIP as skipped
//! with this reason, never as passed). Alone in its test binary because it sets environment
//! variables.
#![cfg(feature = "clip")]

use burn::backend::Flex;
use metrics::{ClipImageEncoder, Error};

#[test]
fn a_model_that_cannot_be_had_is_unavailable_with_the_reason() {
    let err = ClipImageEncoder::<Flex>::load("/nonexistent/clip", &Default::default()).unwrap_err();
    assert!(matches!(err, Error::ModelUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/clip"), "{err}");

    // Offline with an empty HF cache: the repo is not downloaded, and the message says why.
    let home = tempfile::tempdir().unwrap();
    // SAFETY: this binary runs this single test, so no other thread reads the environment.
    unsafe {
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("HF_HOME", home.path());
        std::env::remove_var("HF_HUB_CACHE");
    }
    let err =
        ClipImageEncoder::<Flex>::load("nobody/no-such-clip", &Default::default()).unwrap_err();
    assert!(matches!(err, Error::ModelUnavailable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("nobody/no-such-clip") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
}
