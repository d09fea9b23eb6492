"""treeplay.policy stage."""
