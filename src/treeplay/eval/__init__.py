"""treeplay.eval stage."""
