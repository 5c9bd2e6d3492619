"""The safety layer around the talking-face engine (it imports `vasa_core`; the engine never imports it).

Modules, in the order a request meets them:
  gate        the one call before generation: vasa_core.validate -> consent -> likeness -> audit
              (safety.gate.check_request)
  consent     the uploader's consent choice and name
  likeness    face embeddings and screening against the protected-people gallery (faces: vasa_core.faces)
  audit       append-only SQLite log of every request
  errors      SafetyError (an InputError) and its subclasses: every refusal is one human sentence
  publish     Marker (watermark) + Publisher (C2PA + audit) handed to the pipeline; build_pipeline, the factory
  watermark   invisible payload in every generated frame
  provenance  C2PA manifest signing
  verify      watermark + manifest + audit lookup for a clip
  detector    the bundled deepfake detector's inference (training and evaluation: tools/evals)
"""
