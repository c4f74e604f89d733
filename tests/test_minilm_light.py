"""The transformers-free packaged MiniLM matches transformers' BertModel and tokenizer."""

import pytest
import torch

from pixwizard.config import TextEncoderConfig
from pixwizard.model.encoders.minilm_light import load_light_minilm
from pixwizard.model.encoders.text import MiniLMTextEncoder, build_text_encoder, minilm_path

torch.set_num_threads(1)

TEXTS = ["Remove the rain from this photo.", "sharpen it", "Turn the RED cube into a blue sphere, please!",
         "naïve café – über straße 😀", "x" * 600]


@pytest.fixture(scope="module")
def both():
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    tok, model = load_light_minilm(path)
    return (tok, model), (AutoTokenizer.from_pretrained(path, local_files_only=True),
                          AutoModel.from_pretrained(path, local_files_only=True).eval())


def test_tokenizer_matches(both):
    (light, _), (hf, _) = both
    a = light(TEXTS, padding="longest", truncation=True, max_length=64, return_tensors="pt")
    b = hf(TEXTS, padding="longest", truncation=True, max_length=64, return_tensors="pt")
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["attention_mask"], b["attention_mask"])


def test_encoder_matches(both):
    (tok, light), (hf_tok, hf) = both
    enc = tok(TEXTS, max_length=64)
    with torch.no_grad():
        a = light(enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
        b = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
    keep = enc["attention_mask"].bool()
    assert torch.allclose(a.last_hidden_state[keep], b.last_hidden_state[keep], atol=1e-4)
    assert len(a.hidden_states) == len(b.hidden_states) == 7
    assert torch.allclose(a.hidden_states[-2][keep], b.hidden_states[-2][keep], atol=1e-4)


def test_default_text_encoder_uses_it_and_imports_no_transformers():
    import subprocess
    import sys

    code = ("import sys; from pixwizard.config import TextEncoderConfig; "
            "from pixwizard.model.encoders.text import build_text_encoder; "
            "e = build_text_encoder(TextEncoderConfig()); p = e.encode(['remove the rain']).pooled; "
            "print(type(e.model).__name__, tuple(p.shape), 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["LightBert", "(1,", "384)", "False"], out.stdout + out.stderr
    assert "Loading weights" not in out.stderr
    enc = build_text_encoder(TextEncoderConfig())
    assert isinstance(enc, MiniLMTextEncoder)
