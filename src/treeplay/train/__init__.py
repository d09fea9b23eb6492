"""treeplay.train stage."""
