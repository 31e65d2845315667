//! Pick and load the Qwen2 tokenizer a pipeline declares (fast tokenizer.json or slow vocab.json + merges.txt), with padding and truncation.
