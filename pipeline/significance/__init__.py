"""Is run B really better than run A? Paired resampling statistics over test examples (:mod:`.bootstrap`)
and where a run's test predictions are found (:mod:`.sources`); the command is
:mod:`pipeline.commands.compare`. No TensorFlow."""
