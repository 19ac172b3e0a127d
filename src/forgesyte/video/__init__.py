"""Video files: open an MP4 (and nothing else), decode the frames a job samples, analyse each.

Import from the modules: `service` (the pipeline service and its values), `decoder`.
"""
