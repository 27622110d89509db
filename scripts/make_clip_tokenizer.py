"""Regenerate the bundled CLIP tokenizer (`resources/sd15/tokenizer/`) from OpenAI's BPE file, offline-reproducibly.

Why: SD1.5's text encoder needs OpenAI CLIP's byte-level BPE tokenizer, but neither diffusers nor transformers
ships its vocabulary, and the app must never fetch it from the Hugging Face hub at run time. The vocabulary is
in OpenAI's `bpe_simple_vocab_16e6.txt.gz` (MIT licence, https://github.com/openai/CLIP), which several PyPI
packages carry verbatim. This script takes it from the `clip-anytorch==2.6.0` wheel (pure Python, MIT): the wheel
is downloaded with `pip download --no-deps` and only read as a zip file; it is never installed (installing it
would pull torchvision, which breaks a CPU-only torch).

From the file, exactly as OpenAI's `SimpleTokenizer` does:
  - merges = lines 1 .. 48894 of the file (line 0 is a version comment);
  - vocab  = the 256 byte-to-unicode characters, the same with `</w>`, the 48894 joined merges, then
    `<|startoftext|>` (49406) and `<|endoftext|>` (49407): 49408 ids, identical to `openai/clip-vit-large-patch14`.
The files are written by `transformers.CLIPTokenizer(vocab=..., merges=..., model_max_length=77).save_pretrained`,
then trimmed to vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (what
`CLIPTokenizer.from_pretrained(..., local_files_only=True)` needs), and checked against known token ids.

Usage:  .venv/bin/python scripts/make_clip_tokenizer.py [--wheel clip_anytorch-2.6.0-py3-none-any.whl] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Final

from transformers import CLIPTokenizer

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = REPO_ROOT / "resources" / "sd15" / "tokenizer"
PACKAGE: Final = "clip-anytorch==2.6.0"
BPE_MEMBER: Final = "clip/bpe_simple_vocab_16e6.txt.gz"
# SHA-256 of the BPE file after gunzip; the same bytes ship in open_clip_torch and openai-clip.
BPE_SHA256: Final = "67603cfda2e032ad77b5f8808af37789d590db664b26df8705d2bf8b3c553fc8"
MERGE_COUNT: Final = 49152 - 256 - 2  # 48894: the merges OpenAI's SimpleTokenizer uses
KEEP: Final = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
CHECK_TEXT: Final = "a photo of a corgi"
CHECK_IDS: Final = [49406, 320, 1125, 539, 320, 31320, 49407]


def bytes_to_unicode() -> dict[int, str]:
    """OpenAI CLIP's reversible byte -> printable unicode map (the first 256 vocabulary entries, in this order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def download_wheel(folder: Path) -> Path:
    """`pip download` the wheel (no dependencies, no install) into `folder`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", PACKAGE, "-d", str(folder)],
        check=True,
    )
    (wheel,) = folder.glob("clip_anytorch-*.whl")
    return wheel


def read_bpe(wheel: Path) -> str:
    """The gunzipped BPE text out of the wheel, checked against its known hash."""
    with zipfile.ZipFile(wheel) as archive:
        raw = gzip.decompress(archive.read(BPE_MEMBER))
    digest = hashlib.sha256(raw).hexdigest()
    if digest != BPE_SHA256:
        raise SystemExit(f"{wheel}: {BPE_MEMBER} has SHA-256 {digest}, expected {BPE_SHA256}")
    return raw.decode("utf-8")


def vocab_and_merges(bpe_text: str) -> tuple[dict[str, int], list[str]]:
    """OpenAI's construction of the 49408-entry vocabulary and the merge list."""
    merges = bpe_text.split("\n")[1 : MERGE_COUNT + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != 49408:
        raise SystemExit(f"built {len(vocab)} vocabulary entries, expected 49408")
    return vocab, merges


def write_tokenizer(vocab: dict[str, int], merges: list[str], out: Path) -> None:
    """Save through transformers (so the config is what it expects), keeping only the small slow-format files."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer(vocab=str(vocab_file), merges=str(merges_file), model_max_length=77)
        saved = Path(tmp) / "saved"
        tokenizer.save_pretrained(saved)
        out.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            source = saved / name if (saved / name).exists() else Path(tmp) / name
            if source.exists():
                (out / name).write_bytes(source.read_bytes())
    check(out)


def check(folder: Path) -> None:
    """Reload offline and compare with the ids OpenAI's tokenizer gives."""
    tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    ids = tokenizer(CHECK_TEXT)["input_ids"]
    if ids != CHECK_IDS or tokenizer.model_max_length != 77:
        raise SystemExit(
            f"{folder}: {CHECK_TEXT!r} -> {ids} (max length {tokenizer.model_max_length}), expected {CHECK_IDS}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--wheel", type=Path, help=f"a local {PACKAGE} wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        vocab, merges = vocab_and_merges(read_bpe(wheel))
    write_tokenizer(vocab, merges, args.out)
    print(f"wrote {', '.join(sorted(p.name for p in args.out.iterdir()))} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
