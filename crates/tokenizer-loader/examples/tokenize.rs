//! `cargo run -p tokenizer-loader --example tokenize -- PIPELINE_DIR "some text"`
//!
//! Prints which tokenizer path the pipeline gets and why, then the ids of the text wrapped in the
//! Qwen-Image prompt template, with the 34-token system prefix marked.

use std::process::ExitCode;

use tokenizer_loader::QwenTokenizer;

const TEMPLATE: &str = "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(text)) = (args.next(), args.next()) else {
        eprintln!("usage: tokenize PIPELINE_DIR TEXT");
        return ExitCode::from(2);
    };
    let tok = match QwenTokenizer::from_pipeline_dir(&dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}: {}", tok.decision().path, tok.decision().reason);
    let prompt = TEMPLATE.replace("{}", &text);
    match tok.encode_batch_padded(&[prompt], 1024 + 34) {
        Ok(batch) => {
            let ids = &batch.ids[..batch.lens[0]];
            let (prefix, rest) = ids.split_at(34.min(ids.len()));
            println!("system prefix ({} tokens): {prefix:?}", prefix.len());
            println!("prompt + suffix ({} tokens): {rest:?}", rest.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
