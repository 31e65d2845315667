"""Golden token ids for crates/tokenizer-loader, from transformers' Qwen2Tokenizer.

Writes testdata/tokenizer/:
  corpus.txt         ~250 KB of mixed text (code, prose, CJK, emoji, NFD accents, CRLF, tabs, long
                     space runs, special-token look-alikes), documents joined by <|endoftext|>;
                     generated here from a fixed seed
  corpus_ids.safetensors
                     `ids` [N] i64: the whole corpus tokenized as one string (no template, no special
                     tokens added); `doc_starts` [D] i64: byte offset of each document in corpus.txt
  template.json      the Qwen-Image prompt template, prompts, the 34-token system prefix, and the
                     pipeline's batch call (padding=True, truncation=True at 1024+34 and at 40):
                     input_ids and attention_mask
  .gitattributes     keeps corpus.txt byte-exact (CRLF inside) through git

The oracle: transformers 5 has a single Qwen2Tokenizer class (a TokenizersBackend; the pure-Python
slow tokenizer and Qwen2TokenizerFast are gone, `use_fast` is ignored). It builds the same
`tokenizers` pipeline either from vocab.json + merges.txt + tokenizer_config.json (the "slow files",
what Qwen-Image ships) or from tokenizer.json. We load it both ways and require identical ids, so
one golden serves both Rust paths.
"""

import json
import os
import pathlib
import random
import shutil
import tempfile
import unicodedata

import numpy as np
import tokenizers
import transformers
from transformers import Qwen2Tokenizer

import common

TEMPLATE = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
    "spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
    "<|im_start|>assistant\n"
)
DROP_IDX = 34
TOKENIZER_MAX_LENGTH = 1024
SEPARATOR = "<|endoftext|>"
TARGET_BYTES = 250_000

WORDS = (
    "the of and to in is was for that with as on by at from his her they we you it be are this "
    "have not but had which one all were when there can an your their more if will would what so "
    "image color shape size texture quantity text spatial relationships objects background cat dog "
    "Doraemon eating dorayaki sunset mountain river neon city street night rain umbrella portrait "
    "tokenizer merges vocabulary Qwen transformer diffusion latent sampler guidance scale"
).split()
CONTRACTIONS = ["it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "They'RE"]
CJK = [
    "一只可爱的猫坐在窗台上，阳光洒在它的毛发上。",
    "宫崎骏风格的动漫插画，夏日的海边小镇，蓝天白云。",
    "通义千问是阿里巴巴开发的大型语言模型。",
    "東京の夜景、ネオンが輝く渋谷の交差点。",
    "ひらがなとカタカナ、そして漢字がまざった日本語の文。",
    "서울의 봄, 벚꽃이 흩날리는 거리를 걷는 사람들.",
    "繁體中文：臺灣的夜市小吃非常有名，例如蚵仔煎與珍珠奶茶。",
]
OTHER_SCRIPTS = [
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "مرحبا بالعالم، هذا نص عربي للاختبار.",
    "שלום עולם, זה טקסט בעברית.",
    "नमस्ते दुनिया, यह हिंदी में एक वाक्य है।",
    "สวัสดีชาวโลก นี่คือประโยคภาษาไทย",
]
ACCENTED = ["café", "naïve", "Ångström", "résumé", "São Paulo", "Zürich", "jalapeño", "Crème brûlée", "Dvořák"]
EMOJI = [
    "😀", "🎨", "🐱", "🍣", "🚀", "❤️", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇫🇷", "✨", "🔥", "🧑🏿‍🚀",
]
LOOKALIKES = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|", "|im_end|>", "<|fim_prefix|>",
    "<|vision_start|><|image_pad|><|vision_end|>", "< |im_start| >", "<|IM_START|>",
]


def sentence(rng: random.Random) -> str:
    n = rng.randint(4, 18)
    words = []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            words.append(rng.choice(CONTRACTIONS))
        elif r < 0.14:
            words.append(str(rng.randint(0, 10**rng.randint(1, 9))))
        elif r < 0.18:
            words.append(rng.choice(ACCENTED))
        else:
            words.append(rng.choice(WORDS))
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice([".", "!", "?", "...", ";", ":", ".\"", ")"])


def prose(rng):
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 8))) + "\n\n"


def code(rng):
    name = rng.choice(["encode", "decode", "forward", "merge_pairs", "load_vocab"])
    indent = rng.choice(["    ", "\t", "  "])
    lines = [f"fn {name}(x: &[u32], n: usize) -> Result<Vec<f32>, Error> {{"]
    for i in range(rng.randint(3, 12)):
        depth = indent * rng.randint(1, 3)
        lines.append(
            rng.choice(
                [
                    f"{depth}let v{i} = x.iter().map(|&t| t as f32 * {rng.random():.4f}).collect::<Vec<_>>();",
                    f"{depth}if n >= {rng.randint(0, 4096)} && v.len() != 0 {{ return Err(Error::Bad(\"{name}\")); }}",
                    f"{depth}// TODO({rng.choice(WORDS)}): handle the edge case   ",
                    f"{depth}for (i, w) in v.windows(2).enumerate() {{ acc[i] += w[0] - w[1]; }}",
                    f"{depth}def {name}_{i}(self, *args, **kwargs):  # noqa: E501",
                    f"{depth}x[{i}] = 0x{rng.randint(0, 2**32):08X} >> {rng.randint(1, 31)}; y += x[{i}] ** 2",
                ]
            )
        )
    lines.append("}")
    sep = "\r\n" if rng.random() < 0.3 else "\n"
    return sep.join(lines) + sep + sep


def cjk(rng):
    parts = [rng.choice(CJK) for _ in range(rng.randint(2, 6))]
    if rng.random() < 0.5:
        parts.insert(rng.randrange(len(parts)), f"（{rng.randint(1, 2024)}年）")
    return "".join(parts) + "\n"


def emoji(rng):
    out = []
    for _ in range(rng.randint(5, 20)):
        out.append(rng.choice(EMOJI) * rng.randint(1, 3))
        out.append(rng.choice(["", " ", "  ", rng.choice(WORDS), "\u200d", "\ufe0f"]))
    return "".join(out) + "\n"


def nfd_accents(rng):
    # NFD input: the NFC normaliser must compose these before the split, or ids change.
    text = " ".join(rng.choice(ACCENTED) for _ in range(rng.randint(5, 15)))
    return unicodedata.normalize("NFD", text) + rng.choice(["\n", "\r\n"])


def whitespace(rng):
    pieces = []
    for _ in range(rng.randint(5, 15)):
        pieces.append(rng.choice(WORDS))
        pieces.append(
            rng.choice(
                [" " * rng.randint(2, 40), "\t" * rng.randint(1, 5), "\r\n", "\r\n\r\n", "\n" * rng.randint(1, 4),
                 " \t \n", "   \r\n  ", "\u00a0", "\u3000", "\u2003", "\r", " \n \n"]
            )
        )
    return "".join(pieces) + " " * rng.randint(0, 20) + "\n"


def scripts(rng):
    return " ".join(rng.choice(OTHER_SCRIPTS) for _ in range(rng.randint(1, 4))) + "\n"


def lookalikes(rng):
    return "".join(rng.choice(LOOKALIKES) + rng.choice(["", " ", "\n", sentence(rng)]) for _ in range(rng.randint(2, 6))) + "\n"


def random_unicode(rng):
    # Code points from many blocks (Latin-1, combining marks, symbols, CJK ext, supplementary planes)
    # exercise byte-level fallbacks: every UTF-8 byte must map to one of the 256 base tokens.
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x2000, 0x206F), (0x2190, 0x23FF),
              (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF)]
    out = []
    for _ in range(rng.randint(20, 80)):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out) + "\n"


KINDS = [(prose, 5), (code, 4), (cjk, 3), (emoji, 2), (nfd_accents, 2), (whitespace, 2), (scripts, 1),
         (lookalikes, 1), (random_unicode, 1)]


def make_corpus() -> list[str]:
    rng = random.Random(20240611)
    funcs = [f for f, w in KINDS for _ in range(w)]
    docs, size = [], 0
    while size < TARGET_BYTES:
        doc = "".join(rng.choice(funcs)(rng) for _ in range(rng.randint(1, 4)))
        docs.append(doc)
        size += len(doc.encode("utf-8")) + len(SEPARATOR)
    return docs


def load_both(src: pathlib.Path, slow_config: pathlib.Path):
    """Qwen2Tokenizer from the slow files (vocab + merges + tokenizer_config, as Qwen-Image ships)
    and from tokenizer.json alone."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="qwen_tok_"))
    slow_dir, fast_dir = tmp / "slow", tmp / "fast"
    slow_dir.mkdir()
    fast_dir.mkdir()
    shutil.copy(src / "vocab.json", slow_dir / "vocab.json")
    shutil.copy(src / "merges.txt", slow_dir / "merges.txt")
    shutil.copy(slow_config, slow_dir / "tokenizer_config.json")
    shutil.copy(src / "tokenizer.json", fast_dir / "tokenizer.json")
    slow = Qwen2Tokenizer.from_pretrained(str(slow_dir))
    fast = Qwen2Tokenizer.from_pretrained(str(fast_dir))
    return slow, fast, tmp


def batch_call(tok, texts, max_length):
    enc = tok(texts, max_length=max_length, padding=True, truncation=True)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def main(out: pathlib.Path) -> None:
    out = pathlib.Path(out)
    dst = out / "tokenizer"
    dst.mkdir(parents=True, exist_ok=True)
    slow, fast, tmp = load_both(common.QWEN_TOKENIZER, common.tiny_pipeline_dir(out) / "tokenizer" / "tokenizer_config.json")
    try:
        docs = make_corpus()
        corpus = SEPARATOR.join(docs)
        starts, pos = [], 0
        for d in docs:
            starts.append(pos)
            pos += len(d.encode("utf-8")) + len(SEPARATOR.encode("utf-8"))

        ids_slow = slow.encode(corpus, add_special_tokens=False)
        ids_fast = fast.encode(corpus, add_special_tokens=False)
        assert ids_slow == ids_fast, "transformers' slow-files and tokenizer.json loads disagree"
        # Per-document encodes must concatenate to the whole (the separator is a special token).
        sep_id = slow.convert_tokens_to_ids(SEPARATOR)
        joined = []
        for i, d in enumerate(docs):
            if i:
                joined.append(sep_id)
            joined.extend(slow.encode(d, add_special_tokens=False))
        assert joined == ids_slow

        prompts = [
            "Doraemon is eating dorayaki",
            " ",
            "",
            "一只可爱的猫坐在窗台上，宫崎骏风格。",
            "A neon sign that says \"Qwen-Image\" 🚀✨, café at night,\r\n\twith  long   spaces",
            unicodedata.normalize("NFD", "Crème brûlée on a plate, Ångström-scale detail"),
            " ".join(["a very long prompt"] * 400),
        ]
        texts = [TEMPLATE.format(p) for p in prompts]
        prefix = TEMPLATE.split("{}")[0]
        prefix_ids = slow.encode(prefix, add_special_tokens=False)
        assert prefix_ids == fast.encode(prefix, add_special_tokens=False)
        assert len(prefix_ids) == DROP_IDX, len(prefix_ids)
        full = batch_call(slow, texts, TOKENIZER_MAX_LENGTH + DROP_IDX)
        short = batch_call(slow, texts, 40)
        assert full == batch_call(fast, texts, TOKENIZER_MAX_LENGTH + DROP_IDX)
        assert short == batch_call(fast, texts, 40)
        template = {
            "oracle": f"transformers {transformers.__version__} Qwen2Tokenizer (tokenizers {tokenizers.__version__}); "
            "slow-files and tokenizer.json loads agree",
            "template": TEMPLATE,
            "drop_idx": DROP_IDX,
            "prefix_ids": prefix_ids,
            "pad_id": slow.pad_token_id,
            "special_ids": {t: slow.convert_tokens_to_ids(t) for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>"]},
            "prompts": prompts,
            "batches": [
                {"max_length": TOKENIZER_MAX_LENGTH + DROP_IDX, **full},
                {"max_length": 40, **short},
            ],
        }
        with open(dst / "template.json.tmp", "w", encoding="utf-8", newline="\n") as f:
            json.dump(template, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        os.replace(dst / "template.json.tmp", dst / "template.json")

        with open(dst / "corpus.txt.tmp", "wb") as f:
            f.write(corpus.encode("utf-8"))
        os.replace(dst / "corpus.txt.tmp", dst / "corpus.txt")
        common.save_tensors(
            dst / "corpus_ids.safetensors",
            {"ids": np.asarray(ids_slow, dtype=np.int64), "doc_starts": np.asarray(starts, dtype=np.int64)},
            # One metadata key only: safetensors writes its metadata map in hash order, so several
            # keys would make the file bytes differ between runs.
            metadata={
                "info": json.dumps(
                    {
                        "oracle": template["oracle"],
                        "corpus_bytes": len(corpus.encode("utf-8")),
                        "documents": len(docs),
                        "separator": SEPARATOR,
                    },
                    sort_keys=True,
                )
            },
        )
        with open(dst / ".gitattributes", "w", newline="\n") as f:
            f.write("# corpus.txt has CRLF and tabs on purpose: never normalise it.\n* -text\n")
        print(f"[tokenizer] corpus {len(corpus.encode('utf-8'))} bytes, {len(docs)} docs, {len(ids_slow)} tokens")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(testdata: pathlib.Path, repeats: int = 10) -> None:
    """Python side of `cargo bench -p tokenizer-loader` (run by hand):
    .venv-reference/bin/python xtask/reference/gen_tokenizer.py --bench
    Prints the median of `repeats` runs for the same work as the criterion groups."""
    import statistics
    import time

    def median_s(fn, n=repeats):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    testdata = pathlib.Path(testdata)
    src = testdata / "qwen2.5-tokenizer"
    cfg = common.tiny_pipeline_dir(testdata) / "tokenizer" / "tokenizer_config.json"
    slow, fast, tmp = load_both(src, cfg)
    try:
        corpus = (testdata / "tokenizer" / "corpus.txt").read_text(encoding="utf-8")
        docs = corpus.split(SEPARATOR)
        mb = len(corpus.encode("utf-8")) / 1e6
        print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")
        rows = [
            ("load/slow_vocab_merges (Qwen2Tokenizer)", median_s(lambda: Qwen2Tokenizer.from_pretrained(str(tmp / "slow")))),
            ("load/fast_tokenizer_json (Qwen2Tokenizer)", median_s(lambda: Qwen2Tokenizer.from_pretrained(str(tmp / "fast")))),
            ("load/fast_tokenizer_json (tokenizers.Tokenizer)", median_s(lambda: tokenizers.Tokenizer.from_file(str(src / "tokenizer.json")))),
        ]
        for name, s in rows:
            print(f"{name:55s} {s * 1e3:9.1f} ms")
        for label, tok in [("slow", slow), ("fast", fast)]:
            tok.encode(corpus, add_special_tokens=False)  # warm the BPE cache, as criterion does
            whole = median_s(lambda: tok.encode(corpus, add_special_tokens=False))
            batch = median_s(lambda: tok(docs, padding=True)["input_ids"])
            print(f"encode_corpus/{label}_whole (transformers)              {whole * 1e3:9.1f} ms  {mb / whole:6.2f} MB/s")
            print(f"encode_corpus/{label}_batch_docs (transformers)         {batch * 1e3:9.1f} ms  {mb / batch:6.2f} MB/s")
        raw = tokenizers.Tokenizer.from_file(str(src / "tokenizer.json"))
        raw.encode(corpus, add_special_tokens=False)
        whole = median_s(lambda: raw.encode(corpus, add_special_tokens=False).ids)
        print(f"encode_corpus/fast_whole (tokenizers.Tokenizer)        {whole * 1e3:9.1f} ms  {mb / whole:6.2f} MB/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    if "--bench" in sys.argv:
        bench(pathlib.Path(__file__).resolve().parents[2] / "testdata")
    else:
        print("run through fixtures.py (--only tokenizer), or with --bench for the Python timings")
