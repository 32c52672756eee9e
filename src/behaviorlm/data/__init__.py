"""Data layer: reading logs, the simulator, preprocessing, the Dataset, splits and loaders."""
