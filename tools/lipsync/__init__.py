"""Lip-sync training and evaluation (the model itself is `vasa_core.lipsync.model`).

  data      synthetic speech with exact phone timing (espeak-ng / MBROLA) -> training corpus
  train     mouth model training on that corpus; realtune: fine-tuning on tracked real mouths
  real      mouth tracking of real clips (mediapipe) and their scores
  evaluate  `python -m tools.lipsync.evaluate`: synthetic and real-speech scores of the shipped path
"""
