"""Training, evaluation, benchmarks and review: what the team runs, never imported by the library.

  bench          `python -m vasa_core bench`: speed and memory of the engine
  review         contact sheets and close-ups of rendered portraits (`python -m tools.review`)
  stats          motion statistics of generated and real clips (`python -m tools.stats`)
  motion_data    tracks of real talking video (head, brows, lids, blinks, gaze, mouth + audio features)
  train_motion   the learned motion generator from those tracks (`python -m tools.train_motion --videos DIR`)
  detector_scan  resumable batch scans with the detector, locally or on Ray (`python -m safety detect --out/--ray`)
  lipsync/       lip-sync training data, training (incl. the Whisper mouth) and evaluation on real speech
  evals/         the safety layer's evaluations: detector data/training/evaluation, watermark, likeness
"""
