"""A deterministic fake encoder for unit tests: hashed bag of words, unit-normalised."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class FakeEncoder:
    """Texts sharing words get similar vectors; no model, no torch."""

    def __init__(self, dim: int = 64, name: str = "fake/bag-of-words", seed: str = "v1"):
        self.name = name
        self.dim = dim
        self.fingerprint = hashlib.sha256(f"{name}/{seed}/{dim}".encode()).hexdigest()[:32]
        self.calls: list[int] = []

    def encode(self, texts):
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[i, h % self.dim] += 1.0
            out[i, 0] += 1e-3  # no all-zero rows
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out
