"""Experiments built on train_net: the runner that trains runs side by side, the demo and the robustness grid."""
