"""Code the tests share: tiny models, numpy references, synthetic scenes, fixtures data."""
