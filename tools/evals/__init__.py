"""Evaluations of the safety layer: the bundled deepfake detector (`safety.detector`), the watermark, likeness.

    data.py      detector: research media + our unmarked fakes -> the same re-encoding variants -> cached signals
    evaluate.py  detector: leave-one-generator-out evaluation with intervals; `python -m safety.detector evaluate`
    train.py     detector: one command -> data, evaluation, assets/detector.pkl + assets/detector_eval.json
    watermark.py robustness and false positives of the watermark (`python -m tools.evals.watermark`)
    likeness.py  likeness-screening accuracy (`python -m tools.evals.likeness`)

The library (`safety.detector`) never imports this package except for the `evaluate` command.
"""
