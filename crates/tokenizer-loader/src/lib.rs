//! Pick and load the Qwen2 tokenizer a diffusers pipeline declares — the fast `tokenizer.json` or
//! the slow `vocab.json` + `merges.txt` — and encode prompts with the pipeline's padding and
//! truncation.
//!
//! The choice follows SGLang's loader: a class ending in `Tokenizer` (not `Fast`) gets the slow
//! path, anything else the fast one, a `…Processor` is refused. When the wanted files are
//! missing the other path is loaded and the [`Decision`] says so.
//!
//! ```no_run
//! use tokenizer_loader::QwenTokenizer;
//!
//! let tok = QwenTokenizer::from_pipeline_dir("testdata/tiny-qwen-image")?;
//! println!("{}: {}", tok.decision().path, tok.decision().reason);
//! let ids = tok.encode("Doraemon is eating dorayaki", false)?;
//! let batch = tok.encode_batch_padded(&["a cat", " "], 1024 + 34)?;
//! assert_eq!(batch.ids.len(), batch.batch_size * batch.seq_len);
//! # let _ = ids;
//! # Ok::<(), tokenizer_loader::Error>(())
//! ```

mod decision;
mod error;
mod slow;
mod source;
mod tokenizer;

pub use decision::{ClassSource, Decision, TokenizerPath, path_for_class};
pub use error::{Error, Result};
pub use slow::QWEN2_SPLIT_PATTERN;
pub use source::HubOptions;
pub use tokenizer::{Batch, QwenTokenizer};
