"""The OpenVINO batch path: which models it takes, and that it agrees with torch."""

import numpy as np
import pytest

from indexer import openvino_backend
from indexer.errors import PapersiftError
from tests.conftest import BUNDLED

pytestmark = pytest.mark.skipif(not openvino_backend.available(), reason="openvino not installed")


class Transformer:  # only the class name matters to `convertible`
    pass


def test_only_mean_pooling_models_are_converted():
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import Normalize, Pooling

    assert openvino_backend.convertible([Transformer(), Pooling(8, pooling_mode="mean"), Normalize()])
    assert openvino_backend.convertible([Transformer(), Pooling(8, pooling_mode="mean")])
    assert not openvino_backend.convertible([Transformer(), Pooling(8, pooling_mode="cls")])
    assert not openvino_backend.convertible([Transformer(), Pooling(8, pooling_mode="max"),
                                             Normalize()])
    assert not openvino_backend.convertible([Transformer()])


@pytest.mark.model
def test_openvino_agrees_with_torch_float32_and_keeps_row_order():
    import json

    from indexer.encoder import SentenceTransformerEncoder

    lines = BUNDLED.read_text(encoding="utf-8").splitlines()[:48]
    texts = [json.loads(x)["title"] + ". " + json.loads(x)["abstract"] for x in lines]
    texts[5] = "short"  # lengths differ a lot: the batches are sorted, the rows must not be
    fast = SentenceTransformerEncoder(precision="auto", backend="openvino")
    reference = SentenceTransformerEncoder(precision="float32", backend="torch")
    assert fast.fingerprint == reference.fingerprint  # the same model, so the same index
    got = fast.encode(texts)
    want = reference.encode(texts)
    assert got.shape == want.shape == (48, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    assert (got * want).sum(axis=1).min() > 0.999
    assert fast.backend_in_use.startswith("openvino")
    # A query (fewer than 32 texts) stays on torch: no conversion on the search path.
    one = SentenceTransformerEncoder(precision="float32")
    one.encode(["a single question"])
    assert "openvino" not in one.__dict__


def test_backend_is_checked():
    from indexer.encoder import SentenceTransformerEncoder

    with pytest.raises(PapersiftError, match="backend must be one of auto, torch, openvino"):
        SentenceTransformerEncoder(backend="tensorrt")
