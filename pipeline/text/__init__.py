"""Text handling every kind shares: tokenizers with character offsets, spans and BIO tags, query concatenation."""
