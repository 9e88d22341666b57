// Package recipe holds the runs built on the RL controller (package rl):
// the embedded end-to-end demo (RunDemo: synthetic search worlds, a tiny
// model trained from scratch on the CPU engine, warm-up, async RL,
// held-out evaluation) and the cluster run (RunCluster: a Tinker trainer,
// an SGLang fleet or Tinker sampling, a retrieval server and a dataset).
// They sit beside the controller so that rl itself links neither the
// engine nor retrieval, synth or dataset.
package recipe
