"""What several kinds share: the kind contract, the classification head, small Keras layers, saliency maps."""
