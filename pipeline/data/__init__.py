"""Reading the datasets people download: one reader per file format into canonical records, and splits."""
