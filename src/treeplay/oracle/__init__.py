"""treeplay.oracle stage."""
