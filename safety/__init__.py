"""The safety layer around the talking-face engine.

Modules, in the order a request meets them:
  validate    uploads checked by content, decoded with limits, re-encoded
  consent     the uploader's consent choice and name
  likeness    face embeddings and screening against the protected-people gallery
  audit       append-only SQLite log of every request
  gate        the one call before generation: validate -> consent -> likeness -> audit (safety.gate.check_request)
  errors      SafetyError (a ValueError) and its subclasses: every refusal is one human sentence
  watermark   invisible payload in every generated frame
  provenance  C2PA manifest signing
  verify      watermark + manifest + audit lookup for a clip
"""
