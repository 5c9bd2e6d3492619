"""What a public host of the demo needs around the engine and the safety layer (app.py wires them):

  limits    per-visitor rate limits, job timeouts and the host's size limits (HostLimits)
  guard     an ASGI guard in front of Gradio: per-visitor metering of every endpoint that spends CPU
  cleaner   deletes uploads and outputs after their time
  widgets   Gradio components that hand the app raw bytes instead of server paths
"""
