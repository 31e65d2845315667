use std::path::PathBuf;

/// Everything that can go wrong while loading the text encoder or encoding prompts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A checkpoint problem: missing, unexpected, wrong-shaped or non-float tensor (the message
    /// names the tensor and the file).
    #[error(transparent)]
    Weights(#[from] weights::Error),
    /// The tokenizer could not be loaded or could not encode.
    #[error(transparent)]
    Tokenizer(#[from] tokenizer_loader::Error),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is unreadable, incomplete or asks for something this port does not do.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// diffusers refuses `max_sequence_length` above 1024; 0 would leave no text at all.
    #[error("max_sequence_length {got} is out of range (1..={limit})")]
    MaxSequenceLength { got: usize, limit: usize },
    /// Token ids and attention mask that cannot be encoded (shape, range or content).
    #[error("invalid tokens: {0}")]
    Tokens(String),
}
