"""Encoders: the real MiniLM, and tiny random CLIP / Gemma / CLIP-vision / VAE models saved to
tmp_path and loaded through the same code path as real checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixwizard.config import CodecConfig, SemanticEncoderConfig, TextEncoderConfig, debug, tiny
from pixwizard.model.encoders import (
    CLIPVisionSemanticEncoder,
    CompositeTextEncoder,
    ConvSemanticEncoder,
    PixelCodec,
    SemanticEncoder,
    TextEncoder,
    VAECodec,
    build_codec,
    build_semantic_encoder,
    build_text_encoder,
    masked_mean,
)
from pixwizard.model.encoders.semantic import CLIP_MEAN, CLIP_STD

torch.set_num_threads(1)

WORDS = "remove the rain from this photo please get rid of streaks in picture what is depth scene red cube".split()


def _word_tokenizer(folder, *, with_pad: bool = True, words=WORDS) -> int:
    """A tiny offline WordLevel tokenizer: [PAD]=0 [UNK]=1 [BOS]=4 [EOS]=3, then the words."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 3, "[BOS]": 4, "[SPARE]": 2}
    vocab.update({w: 5 + i for i, w in enumerate(dict.fromkeys(words))})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]",
                                                      special_tokens=[("[BOS]", 4), ("[EOS]", 3)])
    kw = {"pad_token": "[PAD]"} if with_pad else {}
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]", **kw)
    fast.save_pretrained(folder)
    return len(vocab)


@pytest.fixture(scope="module")
def clip_text_dir(tmp_path_factory):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    d = tmp_path_factory.mktemp("clip_text")
    v = _word_tokenizer(d)
    torch.manual_seed(0)
    cfg = CLIPTextConfig(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=12, projection_dim=16,
                         pad_token_id=0, bos_token_id=4, eos_token_id=3)
    CLIPTextModelWithProjection(cfg).save_pretrained(d)
    return str(d)


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory):
    from transformers import GemmaConfig, GemmaModel

    d = tmp_path_factory.mktemp("gemma")
    v = _word_tokenizer(d, with_pad=False)  # like many LM tokenizers: no pad token
    torch.manual_seed(0)
    cfg = GemmaConfig(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                      max_position_embeddings=64, pad_token_id=0, bos_token_id=4, eos_token_id=3)
    GemmaModel(cfg).save_pretrained(d)
    return str(d)


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder(TextEncoderConfig(kind="minilm", max_length=64))


# ----------------------------------------------------------------------------- MiniLM (real weights)


def test_minilm_shapes_mask_and_semantics(minilm):
    assert isinstance(minilm, TextEncoder)
    texts = ["remove the rain from this photo", "please get rid of the rain streaks in the picture",
             "estimate the depth of the scene", "a"]
    enc = minilm.encode(texts)
    b, length, d = enc.tokens.shape
    assert (b, d) == (4, 384) and enc.pooled.shape == (4, 384)
    assert enc.mask.dtype == torch.bool and enc.mask.shape == (4, length)
    lengths = enc.mask.sum(1)
    assert lengths.max() == length and lengths[3] == 3  # [CLS] a [SEP]
    assert (enc.tokens[3, 3:] == 0).all()  # padding positions are zeroed
    torch.testing.assert_close(enc.pooled.norm(dim=-1), torch.ones(4))
    cos = enc.pooled @ enc.pooled.T
    assert cos[0, 1] > cos[0, 2] + 0.3 and cos[0, 1] > cos[1, 2] + 0.3  # paraphrases are closest


def test_minilm_truncates_caches_and_is_frozen(minilm):
    short = build_text_encoder(TextEncoderConfig(kind="minilm", max_length=6))
    long_text = "remove " * 40
    assert short.encode([long_text]).tokens.shape[1] == 6
    assert minilm.encode([long_text]).tokens.shape[1] == 42

    minilm._cache.clear()
    a = minilm.encode(["remove the rain", "remove the rain"])
    assert len(minilm._cache) == 1
    b = minilm.encode(["remove the rain"])
    torch.testing.assert_close(a.index(slice(0, 1)).tokens, b.tokens, rtol=0, atol=0)
    minilm.cache_size, fresh = 0, None
    try:
        minilm._cache.clear()
        fresh = minilm.encode(["estimate the depth", "remove the rain"])
    finally:
        minilm.cache_size = 512
    # batch composition does not change a text's encoding
    torch.testing.assert_close(fresh.tokens[1, :a.tokens.shape[1]], a.tokens[0], atol=1e-5, rtol=1e-4)

    minilm.train()
    assert not minilm.training and not minilm.model.training
    assert not any(p.requires_grad for p in minilm.parameters())
    with pytest.raises(ValueError, match="token_dim=128"):
        build_text_encoder(TextEncoderConfig(kind="minilm", token_dim=128))
    with pytest.raises(TypeError):
        minilm.encode("not a list")


# ----------------------------------------------------------------------------- random (in process)


def test_random_encoder_is_deterministic_and_leaves_global_rng_alone():
    cfg = debug().text
    state = torch.get_rng_state()
    e1 = build_text_encoder(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    e2 = build_text_encoder(cfg)
    texts = ["make the red cube blue", "depth please", "make the red cube blue!"]
    a, b = e1.encode(texts), e2.encode(texts)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.pooled, b.pooled)
    assert a.tokens.shape == (3, 8, 32) and a.pooled.shape == (3, 32)
    assert a.mask.sum(1).tolist() == [7, 4, 8]  # [CLS] words/punctuation [SEP]
    assert not torch.allclose(a.pooled[0], a.pooled[1])
    assert e1.encode(["x " * 100]).tokens.shape[1] == cfg.max_length


def test_random_encoder_other_pooled_width_and_layer():
    cfg = TextEncoderConfig(kind="random", max_length=10, token_dim=24, pooled_dim=12, layer=-2)
    enc = build_text_encoder(cfg).encode(["one two", "three"])
    assert enc.tokens.shape == (2, 4, 24) and enc.pooled.shape == (2, 12)
    torch.testing.assert_close(enc.pooled.norm(dim=-1), torch.ones(2))


# ----------------------------------------------------------------------------- CLIP / Gemma (tiny, from disk)


def test_clip_text_loads_from_folder(clip_text_dir):
    from transformers import AutoTokenizer, CLIPTextModelWithProjection

    cfg = TextEncoderConfig(kind="clip", name_or_path=clip_text_dir, max_length=64, token_dim=32,
                            pooled_dim=16)
    enc_mod = build_text_encoder(cfg)
    texts = ["remove the rain", "what is the depth of this scene"]
    enc = enc_mod.encode(texts)
    assert enc.tokens.shape == (2, 9, 32) and enc.pooled.shape == (2, 16)
    assert enc.mask.sum(1).tolist() == [5, 9]
    ref_model = CLIPTextModelWithProjection.from_pretrained(clip_text_dir).eval()
    ids = AutoTokenizer.from_pretrained(clip_text_dir)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = ref_model(**ids)
    torch.testing.assert_close(enc.pooled, ref.text_embeds, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(enc.tokens[1], ref.last_hidden_state[1], atol=1e-5, rtol=1e-4)
    # CLIP's own position limit (12 here) caps max_length
    assert enc_mod.encode(["rain " * 30]).tokens.shape[1] == 12


def test_gemma_penultimate_layer_and_composite(gemma_dir, clip_text_dir):
    from transformers import AutoModel, AutoTokenizer

    cfg = TextEncoderConfig(kind="gemma", name_or_path=gemma_dir, max_length=32, token_dim=32,
                            pooled_dim=32, layer=-2)
    enc_mod = build_text_encoder(cfg)
    texts = ["remove the rain from this photo", "red cube"]
    enc = enc_mod.encode(texts)
    assert enc.tokens.shape == (2, 8, 32) and enc.mask.sum(1).tolist() == [8, 4]
    model = AutoModel.from_pretrained(gemma_dir).eval()
    tok = AutoTokenizer.from_pretrained(gemma_dir)
    with torch.no_grad():
        hs = model(**tok(["red cube"], return_tensors="pt"), output_hidden_states=True).hidden_states
    torch.testing.assert_close(enc.tokens[1, :4], hs[-2][0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(hs[-2][0], hs[-1][0])
    torch.testing.assert_close(enc.pooled, masked_mean(enc.tokens, enc.mask))

    paper_like = TextEncoderConfig(kind="gemma", name_or_path=gemma_dir, max_length=32, token_dim=32,
                                   pooled_dim=16, layer=-2, pooled_kind="clip",
                                   pooled_name_or_path=clip_text_dir)
    comp = build_text_encoder(paper_like)
    assert isinstance(comp, CompositeTextEncoder) and (comp.token_dim, comp.pooled_dim) == (32, 16)
    both = comp.encode(texts)
    assert both.tokens.shape == (2, 8, 32) and both.pooled.shape == (2, 16)
    torch.testing.assert_close(both.tokens, enc.tokens)


def test_text_builder_errors(tmp_path, clip_text_dir):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_text_encoder(TextEncoderConfig(kind="clip", name_or_path=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="unknown text encoder kind"):
        build_text_encoder(TextEncoderConfig(kind="t5"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pooled_name_or_path"):
        build_text_encoder(TextEncoderConfig(kind="random", token_dim=32, pooled_dim=32, pooled_kind="clip"))
    with pytest.raises(ValueError, match="pooled_dim=384"):
        build_text_encoder(TextEncoderConfig(kind="clip", name_or_path=clip_text_dir, token_dim=32))
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="cannot load"):
        build_text_encoder(TextEncoderConfig(kind="clip", name_or_path=str(tmp_path / "junk")))


# ----------------------------------------------------------------------------- semantic encoders


def test_conv_semantic_encoder_any_size_and_trainable():
    cfg = tiny().semantic
    enc = build_semantic_encoder(cfg)
    assert isinstance(enc, ConvSemanticEncoder) and isinstance(enc, SemanticEncoder)
    for h, w in [(128, 128), (96, 200), (33, 17)]:
        out = enc(torch.rand(2, 3, h, w) * 2 - 1)
        assert out.shape == (2, 64, 128)
    flat = enc(torch.zeros(1, 3, 64, 64))[0]
    assert flat.std(0).mean() > 0  # position embedding distinguishes tokens of a flat image
    x = torch.rand(2, 3, 40, 56) * 2 - 1
    enc(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    with torch.no_grad():  # a square input at the encoder size is used as is (no resampling)
        torch.testing.assert_close(enc(F.interpolate(x, size=(128, 128), mode="bilinear", antialias=True)),
                                   enc(x))


def test_conv_semantic_encoder_errors():
    with pytest.raises(ValueError, match="power of two"):
        ConvSemanticEncoder(16, image_size=96, grid=8)
    enc = build_semantic_encoder(debug().semantic)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        enc(torch.zeros(1, 1, 32, 32))
    assert build_semantic_encoder(SemanticEncoderConfig(kind="none")) is None
    with pytest.raises(ValueError, match="unknown semantic encoder kind"):
        build_semantic_encoder(SemanticEncoderConfig(kind="dino"))  # type: ignore[arg-type]


def test_clip_vision_semantic_encoder_from_folder(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    vcfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModel(vcfg).save_pretrained(tmp_path)
    cfg = SemanticEncoderConfig(kind="clip", name_or_path=str(tmp_path), dim=32, image_size=32)
    enc = build_semantic_encoder(cfg)
    assert isinstance(enc, CLIPVisionSemanticEncoder) and enc.num_tokens == 16
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = enc(x)
    assert out.shape == (2, 16, 32)
    ref_model = CLIPVisionModel.from_pretrained(tmp_path).eval()
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = ref_model(pixel_values=((x + 1) / 2 - mean) / std).last_hidden_state
    torch.testing.assert_close(out, ref[:, 1:], atol=1e-5, rtol=1e-4)
    assert enc(torch.rand(1, 3, 50, 70) * 2 - 1).shape == (1, 16, 32)  # any size is resized
    enc.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(ValueError, match="dim=1024"):
        build_semantic_encoder(SemanticEncoderConfig(kind="clip", name_or_path=str(tmp_path), dim=1024,
                                                     image_size=32))


# ----------------------------------------------------------------------------- codecs


def test_pixel_codec_is_identity():
    codec = build_codec(CodecConfig())
    assert isinstance(codec, PixelCodec) and (codec.channels, codec.downsample) == (3, 1)
    x = torch.rand(1, 3, 7, 9)
    assert codec.decode(codec.encode(x)) is x
    with pytest.raises(ValueError, match="latent_channels=4"):
        build_codec(CodecConfig(kind="pixel", latent_channels=4))


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    from diffusers import AutoencoderKL

    d = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16),
                  layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32).save_pretrained(d)
    return str(d)


def test_vae_codec_round_trip_odd_sizes(vae_dir):
    from diffusers import AutoencoderKL

    cfg = CodecConfig(kind="vae", name_or_path=vae_dir, latent_channels=4, downsample=4,
                      scaling_factor=0.5, shift_factor=0.1)
    codec = build_codec(cfg)
    assert isinstance(codec, VAECodec) and (codec.channels, codec.downsample) == (4, 4)
    x = torch.rand(2, 3, 20, 28) * 2 - 1  # 20 and 28: multiples of 4, not of 8
    z = codec.encode(x)
    assert z.shape == (2, 4, 5, 7)
    ref = AutoencoderKL.from_pretrained(vae_dir).eval()
    with torch.no_grad():
        mean = ref.encode(x).latent_dist.mean
        torch.testing.assert_close(z, (mean - 0.1) * 0.5, atol=1e-5, rtol=1e-4)
        y = codec.decode(z)
        torch.testing.assert_close(y, ref.decode(mean).sample, atol=1e-5, rtol=1e-4)
    assert y.shape == x.shape
    s1 = codec.encode(x, generator=torch.Generator().manual_seed(3))
    s2 = codec.encode(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2) and not torch.allclose(s1, z)
    with pytest.raises(ValueError, match="multiple of the VAE downsample 4"):
        codec.encode(torch.zeros(1, 3, 18, 28))
    with pytest.raises(ValueError, match="downsample=8"):
        build_codec(CodecConfig(kind="vae", name_or_path=vae_dir, latent_channels=4, downsample=8))
    with pytest.raises(ValueError, match="name_or_path"):
        build_codec(CodecConfig(kind="vae"))
