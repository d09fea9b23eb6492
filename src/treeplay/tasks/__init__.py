"""treeplay.tasks stage."""
