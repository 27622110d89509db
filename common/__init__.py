"""The lowest layer: small standard-library helpers that every package may use, importing none of them."""
