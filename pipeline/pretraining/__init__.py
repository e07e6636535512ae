"""Continued masked-language-model pretraining of a backbone on in-domain text (the ``pretrain`` stage)."""
