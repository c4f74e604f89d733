"""Encoders behind one interface (see ``base``): instruction text, semantic image tokens, latent codec."""

from pixwizard.model.encoders.base import LatentCodec, SemanticEncoder, TextEncoder, TextEncoding
from pixwizard.model.encoders.codec import PixelCodec, VAECodec, build_codec
from pixwizard.model.encoders.semantic import (
    CLIPVisionSemanticEncoder,
    ConvSemanticEncoder,
    build_semantic_encoder,
)
from pixwizard.model.encoders.text import (
    CLIPTextEncoder,
    CompositeTextEncoder,
    FrozenTextEncoder,
    GemmaTextEncoder,
    HashWordTokenizer,
    MiniLMTextEncoder,
    RandomTextEncoder,
    build_text_encoder,
    load_pretrained,
    masked_mean,
    minilm_path,
)

__all__ = [
    "CLIPTextEncoder", "CLIPVisionSemanticEncoder", "CompositeTextEncoder", "ConvSemanticEncoder",
    "FrozenTextEncoder", "GemmaTextEncoder", "HashWordTokenizer", "LatentCodec", "MiniLMTextEncoder",
    "PixelCodec", "RandomTextEncoder", "SemanticEncoder", "TextEncoder", "TextEncoding", "VAECodec",
    "build_codec", "build_semantic_encoder", "build_text_encoder", "load_pretrained", "masked_mean",
    "minilm_path",
]
