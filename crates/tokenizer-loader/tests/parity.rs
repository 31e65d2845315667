//! Given the golden ids of transformers 5.24's `Qwen2Tokenizer` (loaded from the slow files and
//! from tokenizer.json, which agree), both of our paths give exactly the same ids on a 250 KB
//! mixed corpus and on the Qwen-Image prompt template, including the pipeline's padded batch.

use crate::common;

use common::{copy_files, qwen25, read_i64, testdata, tiny_pipeline};
use serde_json::Value;
use tokenizer_loader::{QwenTokenizer, TokenizerPath};

fn golden_dir() -> std::path::PathBuf {
    testdata().join("tokenizer")
}

/// The slow path as a pipeline ships it, and the fast path from the real tokenizer.json.
fn both_paths() -> Vec<QwenTokenizer> {
    let slow = QwenTokenizer::from_pipeline_dir(tiny_pipeline()).expect("slow tokenizer");
    assert_eq!(
        slow.decision().path,
        TokenizerPath::Slow,
        "{:?}",
        slow.decision()
    );
    let fast = QwenTokenizer::from_folder(qwen25()).expect("fast tokenizer");
    assert_eq!(
        fast.decision().path,
        TokenizerPath::Fast,
        "{:?}",
        fast.decision()
    );
    vec![slow, fast]
}

/// Compare and, on a mismatch, say where in the corpus it is.
fn assert_same_ids(tok: &QwenTokenizer, got: &[u32], want: &[i64], text: &str) {
    let first_diff = got.iter().zip(want).position(|(g, w)| i64::from(*g) != *w);
    if first_diff.is_none() && got.len() == want.len() {
        return;
    }
    let at = first_diff.unwrap_or(got.len().min(want.len()));
    let lo = at.saturating_sub(5);
    let context = tok
        .decode(&got[lo..(at + 5).min(got.len())], false)
        .unwrap_or_default();
    panic!(
        "{} path: ids differ at token {at} (got {} tokens, want {}); got {:?}, want {:?}; \
         our text there: {context:?} (corpus of {} bytes)",
        tok.decision().path,
        got.len(),
        want.len(),
        &got[lo..(at + 5).min(got.len())],
        &want[lo..(at + 5).min(want.len())],
        text.len()
    );
}

#[test]
fn corpus_ids_match_transformers_on_both_paths() {
    let text = std::fs::read_to_string(golden_dir().join("corpus.txt")).expect("corpus.txt");
    assert!(text.len() >= 200_000, "corpus is {} bytes", text.len());
    assert!(
        text.contains("\r\n") && text.contains('\t'),
        "corpus lost its CRLF or tabs"
    );
    let want = read_i64(&golden_dir().join("corpus_ids.safetensors"), "ids");
    for tok in both_paths() {
        let got = tok.encode(&text, false).expect("encode corpus");
        assert_same_ids(&tok, &got, &want, &text);
    }
}

#[test]
fn corpus_documents_encode_alone_as_in_the_whole() {
    // Documents are joined by <|endoftext|>, so each encoded alone is a slice of the whole:
    // this checks the batch path on many real inputs and that special tokens are never split.
    let text = std::fs::read_to_string(golden_dir().join("corpus.txt")).expect("corpus.txt");
    let want = read_i64(&golden_dir().join("corpus_ids.safetensors"), "ids");
    let starts = read_i64(&golden_dir().join("corpus_ids.safetensors"), "doc_starts");
    // Slice by the recorded offsets: some documents contain <|endoftext|> themselves.
    let sep_len = "<|endoftext|>".len();
    let docs: Vec<&str> = starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let end = starts
                .get(i + 1)
                .map_or(text.len(), |&n| n as usize - sep_len);
            &text[s as usize..end]
        })
        .collect();
    assert!(docs.len() > 100, "{} documents", docs.len());
    for tok in both_paths() {
        let sep = tok.token_id("<|endoftext|>").expect("<|endoftext|>");
        let batch = tok.encode_batch_padded(&docs, usize::MAX).expect("batch");
        let mut joined: Vec<u32> = Vec::new();
        for (i, &len) in batch.lens.iter().enumerate() {
            if i > 0 {
                joined.push(sep);
            }
            joined.extend_from_slice(&batch.row(i).expect("row")[..len]);
        }
        assert_same_ids(&tok, &joined, &want, &text);
    }
}

#[test]
fn template_prefix_is_34_tokens_and_batches_match_the_pipeline_call() {
    let path = golden_dir().join("template.json");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("template.json"))
            .expect("json");
    let template = golden["template"].as_str().expect("template");
    let drop_idx = golden["drop_idx"].as_u64().expect("drop_idx") as usize;
    assert_eq!(drop_idx, 34);
    let prefix = template.split("{}").next().expect("prefix");
    let want_prefix: Vec<u32> = serde_json::from_value(golden["prefix_ids"].clone()).expect("ids");
    let prompts: Vec<String> = serde_json::from_value(golden["prompts"].clone()).expect("prompts");
    let texts: Vec<String> = prompts.iter().map(|p| template.replace("{}", p)).collect();

    for tok in both_paths() {
        let path = tok.decision().path;
        let got = tok.encode(prefix, true).expect("prefix");
        assert_eq!(
            got.len(),
            34,
            "{path}: system prefix is {} tokens",
            got.len()
        );
        assert_eq!(got, want_prefix, "{path}: system prefix ids");
        assert_eq!(
            Some(tok.pad_id()),
            golden["pad_id"].as_u64().map(|v| v as u32),
            "{path}: pad id"
        );
        for (token, id) in golden["special_ids"].as_object().expect("special_ids") {
            assert_eq!(
                tok.token_id(token).map(u64::from),
                id.as_u64(),
                "{path}: id of {token}"
            );
        }
        for b in golden["batches"].as_array().expect("batches") {
            let max_len = b["max_length"].as_u64().expect("max_length") as usize;
            let want_ids: Vec<Vec<u32>> =
                serde_json::from_value(b["input_ids"].clone()).expect("ids");
            let want_mask: Vec<Vec<u32>> =
                serde_json::from_value(b["attention_mask"].clone()).expect("mask");
            let batch = tok.encode_batch_padded(&texts, max_len).expect("batch");
            assert_eq!(batch.batch_size, want_ids.len());
            for i in 0..batch.batch_size {
                assert_eq!(
                    batch.row(i),
                    Some(&want_ids[i][..]),
                    "{path}: ids row {i} at max_len {max_len}"
                );
                assert_eq!(
                    batch.mask_row(i),
                    Some(&want_mask[i][..]),
                    "{path}: mask row {i}"
                );
                assert_eq!(batch.lens[i], want_mask[i].iter().sum::<u32>() as usize);
            }
        }
    }
}

#[test]
fn merges_with_version_header_and_crlf_give_the_same_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = tiny_pipeline().join("tokenizer");
    copy_files(&src, dir.path(), &["vocab.json", "tokenizer_config.json"]);
    let merges = std::fs::read_to_string(src.join("merges.txt")).expect("merges.txt");
    let crlf = format!("#version: 0.2\r\n{}", merges.replace('\n', "\r\n"));
    std::fs::write(dir.path().join("merges.txt"), crlf).expect("write merges");

    let variant = QwenTokenizer::from_folder(dir.path()).expect("variant");
    assert_eq!(variant.decision().path, TokenizerPath::Slow);
    let text = std::fs::read_to_string(golden_dir().join("corpus.txt")).expect("corpus.txt");
    let want = read_i64(&golden_dir().join("corpus_ids.safetensors"), "ids");
    let got = variant.encode(&text, false).expect("encode");
    assert_same_ids(&variant, &got, &want, &text);
}
