"""A bounded cache of text encodings: every text is encoded once while it is in use, memory stays bounded."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch


class TextCache:
    """Least-recently-used map from text to its encoding (a tensor with a leading batch axis of 1)."""

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: object) -> bool:
        return text in self._entries

    def get_many(self, texts: Sequence[str], encode: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """Encodings of `texts`, in order; `encode` is called once, for the texts not cached (deduplicated)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._entries]
        encoded = encode(missing) if missing else None
        fresh = {text: encoded[i : i + 1] for i, text in enumerate(missing)} if encoded is not None else {}
        result = torch.cat([fresh[t] if t in fresh else self._entries[t] for t in texts])
        for text in texts:  # most recently used last
            if text in fresh:
                self._entries[text] = fresh[text]
            self._entries.move_to_end(text)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return result

    def clear(self) -> None:
        self._entries.clear()
