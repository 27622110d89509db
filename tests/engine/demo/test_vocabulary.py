from pathlib import Path

from transformers import CLIPTokenizer

from engine.demo.vocabulary import EOS, MAX_LENGTH, bpe, build_vocabulary, world_words, write_tokenizer
from engine.demo.world import generate


def test_every_world_word_is_one_token_through_the_real_tokenizer(tmp_path: Path) -> None:
    tokenizer = write_tokenizer(tmp_path / "tok")
    for word in world_words():
        assert tokenizer.tokenize(word) == [word + "</w>"], word
    caption = generate(4).caption
    assert all(token.endswith("</w>") for token in tokenizer.tokenize(caption))
    assert len(tokenizer(caption).input_ids) <= MAX_LENGTH


def test_unknown_words_still_tokenize_into_characters(tmp_path: Path) -> None:
    tokenizer = write_tokenizer(tmp_path / "tok")
    assert tokenizer.tokenize("a purple dinosaur!") == ["a</w>", "purple</w>", *"dinosau", "r</w>", "!</w>"]


def test_the_saved_tokenizer_loads_offline_and_pads(tmp_path: Path) -> None:
    write_tokenizer(tmp_path / "tok")
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "tok", local_files_only=True)
    ids = tokenizer("a red circle", padding="max_length").input_ids
    assert len(ids) == MAX_LENGTH == tokenizer.model_max_length
    assert ids[4:] == [tokenizer.convert_tokens_to_ids(EOS)] * (MAX_LENGTH - 4)


def test_the_files_are_reproducible(tmp_path: Path) -> None:
    write_tokenizer(tmp_path / "a")
    write_tokenizer(tmp_path / "b")
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_adding_a_word_never_splits_an_earlier_one_differently() -> None:
    words = ["and", "triangle", "an", "orange", "tangerine"]
    _vocab, merges = build_vocabulary(words)
    ranks = {(m.split(" ")[0], m.split(" ")[1]): i for i, m in enumerate(merges)}
    for word in words:
        assert bpe(word, ranks) == [word + "</w>"]
