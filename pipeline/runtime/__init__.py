"""Process-level runtime: TensorFlow set-up for bert4keras, stop handlers, and the code closure of each stage."""
