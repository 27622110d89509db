"""The demo model's tokenizer: a CLIP BPE tokenizer whose vocabulary is the synthetic world's words.

Each known word is one token (its merges build it from characters); anything else still tokenizes, into
characters, so a user's caption never fails. The files are generated here, not downloaded.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Final

from transformers import CLIPTokenizer

from engine.demo.limits import known_words

BOS: Final = "<|startoftext|>"
EOS: Final = "<|endoftext|>"
# Short captions: "a yellow triangle, ..., and a red star on a light blue background" fits in 48 tokens.
MAX_LENGTH: Final = 48


def world_words() -> list[str]:
    return sorted({",", *known_words()})


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map (the base alphabet of the vocabulary)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """How BPE splits `word`: merge the best-ranked adjacent pair until none applies."""
    pieces = [*word[:-1], word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b), len(ranks) + 1), i) for i, (a, b) in enumerate(itertools.pairwise(pieces))]
        rank, at = min(pairs)
        if rank > len(ranks):
            break
        pieces[at : at + 2] = [pieces[at] + pieces[at + 1]]
    return pieces


def build_vocabulary(words: list[str]) -> tuple[dict[str, int], list[str]]:
    """(token -> id, merges) so that each word becomes one token, CLIP style (`</w>` ends a word).

    A word's merges start from how the merges so far already split it, and are added with lower priority
    than all of those, so adding a word never changes how an earlier one is split.
    """
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet]
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        pieces = bpe(word, ranks)
        current = pieces[0]
        for piece in pieces[1:]:
            ranks.setdefault((current, piece), len(ranks))
            current += piece
            tokens.append(current)
    tokens += [BOS, EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return vocab, [f"{a} {b}" for a, b in sorted(ranks, key=ranks.__getitem__)]


def write_tokenizer(folder: Path, words: list[str] | None = None) -> CLIPTokenizer:
    """Write vocab.json, merges.txt and the tokenizer config into `folder`, and return the tokenizer."""
    vocab, merges = build_vocabulary(words or world_words())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=MAX_LENGTH
    )
    tokenizer.save_pretrained(folder)
    return tokenizer
