"""Entropy coding: probability tables (:mod:`~tcmcodec.coding.tables`), the range coder
(:mod:`~tcmcodec.coding.range_coder`), and a TCM's latents to strings and back
(:mod:`~tcmcodec.coding.latent_coder`). docs/format.md describes the strings."""
