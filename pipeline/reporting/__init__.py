"""Report files, plots and the worst-mistakes report, shared by the stages and the kinds."""
