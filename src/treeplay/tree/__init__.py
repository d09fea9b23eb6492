"""treeplay.tree stage."""
