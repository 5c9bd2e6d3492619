"""Training, evaluation, benchmarks and review: what the team runs, never imported by the library.

  bench       `python -m vasa_core bench`: speed and memory of the engine
  review      contact sheets and close-ups of rendered portraits (`python -m tools.review`)
  stats       motion statistics of generated and real clips (`python -m tools.stats`)
  lipsync/    lip-sync training data, training and evaluation on synthetic and real speech
  evals/      the safety layer's evaluations: detector data/training/evaluation, watermark, likeness
"""
