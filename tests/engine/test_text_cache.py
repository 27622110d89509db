import torch

from engine.text_cache import TextCache


def encoder(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    def encode(texts: list[str]) -> torch.Tensor:
        calls.append(list(texts))
        return torch.tensor([[float(len(t))] for t in texts])

    return encode


def test_each_text_is_encoded_once_and_results_keep_the_order_asked() -> None:
    calls: list[list[str]] = []
    cache = TextCache()
    out = cache.get_many(["ab", "a", "ab"], encoder(calls))
    assert out.flatten().tolist() == [2.0, 1.0, 2.0]
    assert calls == [["ab", "a"]]
    out = cache.get_many(["abc", "a"], encoder(calls))
    assert out.flatten().tolist() == [3.0, 1.0]
    assert calls == [["ab", "a"], ["abc"]]
    cache.get_many(["a"], encoder(calls))
    assert len(calls) == 2, "all cached: no call"


def test_memory_is_bounded_and_the_least_recently_used_goes_first() -> None:
    calls: list[list[str]] = []
    cache = TextCache(capacity=2)
    cache.get_many(["a", "b"], encoder(calls))
    cache.get_many(["a"], encoder(calls))  # a is now the most recent
    cache.get_many(["c"], encoder(calls))
    assert len(cache) == 2 and "b" not in cache and "a" in cache and "c" in cache
    cache.clear()
    assert len(cache) == 0
